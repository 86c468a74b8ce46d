"""Network security groups, their rules and a subnet's NSG through the real SDK: what Azure stores and what it refuses."""
import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.network import models

from anycast_lab.arm.client import RESOURCE_GROUP as RG

SYNC = {"name": "sync-allow", "properties": {"protocol": "Udp", "access": "Allow", "direction": "Inbound", "priority": 200,
                                             "sourceAddressPrefixes": ["10.10.3.4", "10.10.3.5"], "sourcePortRange": "*",
                                             "destinationAddressPrefixes": ["10.10.3.4", "10.10.3.5"], "destinationPortRange": "3780"}}
DENY = {"name": "sync-deny", "properties": {"protocol": "Udp", "access": "Deny", "direction": "Inbound", "priority": 201,
                                            "sourceAddressPrefix": "*", "sourcePortRange": "*", "destinationAddressPrefix": "*",
                                            "destinationPortRange": "3780"}}


def _nsg(net, name="nsg-sync", rules=(SYNC, DENY), location="westeurope"):
    return net.network_security_groups.begin_create_or_update(RG, name, {"location": location, "properties": {"securityRules": list(rules)}}).result()


def _refused(call, *args):
    with pytest.raises(HttpResponseError) as caught:
        call(*args).result()
    return caught.value


def test_nsg_crud_with_rules_and_default_rules(arm_emulator, net):
    nsg = _nsg(net)
    assert nsg.provisioning_state == "Succeeded" and nsg.resource_guid and nsg.etag.startswith('W/"')
    rules = {r.name: r for r in nsg.security_rules}
    assert rules["sync-allow"].source_address_prefixes == ["10.10.3.4", "10.10.3.5"] and rules["sync-allow"].destination_port_range == "3780"
    assert rules["sync-deny"].source_address_prefix == "*" and rules["sync-deny"].source_address_prefixes == []
    assert rules["sync-allow"].id == arm_emulator.rid("networkSecurityGroups/nsg-sync/securityRules/sync-allow")
    assert [(r.name, r.priority, r.direction) for r in nsg.default_security_rules] == [
        ("AllowVnetInBound", 65000, "Inbound"), ("AllowAzureLoadBalancerInBound", 65001, "Inbound"), ("DenyAllInBound", 65500, "Inbound"),
        ("AllowVnetOutBound", 65000, "Outbound"), ("AllowInternetOutBound", 65001, "Outbound"), ("DenyAllOutBound", 65500, "Outbound")]
    # rules as child resources
    ssh = {"properties": {"protocol": "Tcp", "access": "Allow", "direction": "Inbound", "priority": 300, "sourceAddressPrefix": "10.0.0.0/8",
                          "sourcePortRange": "*", "destinationAddressPrefix": "*", "destinationPortRange": "22"}}
    net.security_rules.begin_create_or_update(RG, "nsg-sync", "ssh", ssh).result()
    assert sorted(r.name for r in net.security_rules.list(RG, "nsg-sync")) == ["ssh", "sync-allow", "sync-deny"]
    assert net.security_rules.get(RG, "nsg-sync", "ssh").destination_port_range == "22"
    # a group's PUT is authoritative for its rules
    assert [r.name for r in _nsg(net, rules=[DENY]).security_rules] == ["sync-deny"]
    assert [g.name for g in net.network_security_groups.list(RG)] == ["nsg-sync"]
    net.network_security_groups.begin_delete(RG, "nsg-sync").result()
    assert list(net.network_security_groups.list_all()) == []
    assert arm_emulator.writes() == 4


def test_subnet_nsg_is_reflected_both_ways_and_keeps_the_nsg_in_use(arm_emulator, net):
    nsg = _nsg(net)
    subnet = net.subnets.get(RG, "vnet-hub-weu", "snet-sync")
    subnet.network_security_group = models.NetworkSecurityGroup(id=nsg.id)
    subnet = net.subnets.begin_create_or_update(RG, "vnet-hub-weu", "snet-sync", subnet).result()
    assert subnet.network_security_group.id == nsg.id
    assert [s.id for s in net.network_security_groups.get(RG, "nsg-sync").subnets] == [subnet.id]
    error = _refused(net.network_security_groups.begin_delete, RG, "nsg-sync")
    assert error.status_code == 400 and error.error.code == "InUseNetworkSecurityGroupCannotBeDeleted" and subnet.id in error.error.message
    subnet.network_security_group = None
    net.subnets.begin_create_or_update(RG, "vnet-hub-weu", "snet-sync", subnet).result()
    net.network_security_groups.begin_delete(RG, "nsg-sync").result()


def test_subnet_nsg_must_exist_in_the_vnets_region(arm_emulator, net):
    subnet = net.subnets.get(RG, "vnet-hub-weu", "snet-sync")
    subnet.network_security_group = models.NetworkSecurityGroup(id=arm_emulator.rid("networkSecurityGroups/nope"))
    error = _refused(net.subnets.begin_create_or_update, RG, "vnet-hub-weu", "snet-sync", subnet)
    assert error.error.code == "InvalidResourceReference"
    elsewhere = _nsg(net, name="nsg-neu", location="northeurope")
    subnet.network_security_group = models.NetworkSecurityGroup(id=elsewhere.id)
    error = _refused(net.subnets.begin_create_or_update, RG, "vnet-hub-weu", "snet-sync", subnet)
    assert error.error.code == "InvalidResourceReference" and "same region" in error.error.message
    assert net.subnets.get(RG, "vnet-hub-weu", "snet-sync").network_security_group is None


@pytest.mark.parametrize("change, code", [
    ({"priority": 201}, "SecurityRuleConflict"),
    ({"priority": 99}, "SecurityRuleInvalidPriority"),
    ({"priority": 4097}, "SecurityRuleInvalidPriority"),
    ({"destinationPortRange": "70000"}, "SecurityRuleInvalidPortRange"),
    ({"destinationPortRange": "3790-3780"}, "SecurityRuleInvalidPortRange"),
    ({"destinationPortRange": "any"}, "SecurityRuleInvalidPortRange"),
    ({"sourceAddressPrefixes": ["10.10.3.4/24"]}, "SecurityRuleInvalidAddressPrefix"),
    ({"sourceAddressPrefixes": ["*"]}, "SecurityRuleParameterContainsUnsupportedValue"),
    ({"sourceAddressPrefixes": [], "sourceAddressPrefix": "any"}, "SecurityRuleInvalidAddressPrefix"),
    ({"protocol": "Sctp"}, "InvalidRequestFormat"),
    ({"direction": None}, "InvalidRequestFormat"),
])
def test_what_azure_refuses_in_a_rule_leaves_nothing_stored(arm_emulator, net, change, code):
    allow = {"name": "sync-allow", "properties": dict(SYNC["properties"], **change)}
    error = _refused(net.network_security_groups.begin_create_or_update, RG, "nsg-sync",
                     {"location": "westeurope", "properties": {"securityRules": [allow, DENY]}})
    assert error.status_code == 400 and error.error.code == code, error.error.message
    assert list(net.network_security_groups.list(RG)) == []


def test_a_child_rule_conflicting_with_a_sibling_is_refused(arm_emulator, net):
    _nsg(net)
    clash = {"properties": dict(DENY["properties"], destinationPortRange="22")}
    error = _refused(net.security_rules.begin_create_or_update, RG, "nsg-sync", "clash", clash)
    assert error.error.code == "SecurityRuleConflict" and "sync-deny" in error.error.message
    # the same priority in the other direction is fine
    net.security_rules.begin_create_or_update(RG, "nsg-sync", "out", {"properties": dict(clash["properties"], direction="Outbound")}).result()
