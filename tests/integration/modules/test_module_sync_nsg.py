"""anycast.nva.sync_nsg through ansible-playbook against the ARM emulator: the sync subnet's NSG."""
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.network import models

from anycast_lab.playbook_runner import HUB_VNET, RG

SYNC = {"virtual_network": HUB_VNET, "name": "snet-sync"}
NVAS = ["10.10.3.5", "10.10.3.4"]


def nsg_args(**extra):
    return dict(dict(name="nsg-sync", resource_group=RG, subnet=SYNC, nva_addresses=NVAS), **extra)


def rules_in_azure(network, name="nsg-sync"):
    """(name, priority, access, protocol, sources, destinations, destination port) of every rule of the group."""
    out = []
    for rule in network.network_security_groups.get(RG, name).security_rules or []:
        sources = sorted(rule.source_address_prefixes or [rule.source_address_prefix])
        destinations = sorted(rule.destination_address_prefixes or [rule.destination_address_prefix])
        out.append((rule.name, rule.priority, rule.access, rule.protocol, sources, destinations, rule.destination_port_range))
    return sorted(out)


def nsg_of(network, subnet="snet-sync"):
    nsg = network.subnets.get(RG, HUB_VNET, subnet).network_security_group
    return nsg.id.rsplit("/", 1)[-1] if nsg else None


def other_nsg(network, name, rules=()):
    return network.network_security_groups.begin_create_or_update(RG, name, {"location": "westeurope", "properties": {"securityRules": list(rules)}}).result()


def test_lifecycle_check_create_rerun_update(run_module, network):
    # check mode: the change reported, nothing sent
    planned = run_module("sync_nsg", nsg_args(), check=True)
    assert planned["changed"] is True and planned["writes"] == 0, planned
    assert [r["name"] for r in planned["diff"]["after"]["rules"]] == ["anycast-sync-allow", "anycast-sync-deny"]
    assert planned["diff"]["before"] == {"subnet_nsg": None}
    with pytest.raises(ResourceNotFoundError):
        network.network_security_groups.get(RG, "nsg-sync")
    assert nsg_of(network) is None

    # create: one PUT for the group with both rules, one for the subnet
    created = run_module("sync_nsg", nsg_args())
    assert created["changed"] is True and created["writes"] == 2, created
    nvas = ["10.10.3.4", "10.10.3.5"]
    assert rules_in_azure(network) == [("anycast-sync-allow", 200, "Allow", "Udp", nvas, nvas, "3780"),
                                       ("anycast-sync-deny", 201, "Deny", "Udp", ["*"], ["*"], "3780")]
    assert nsg_of(network) == "nsg-sync" and created["associated"] is True and created["replaced"] is None
    assert created["nsg"]["id"] == network.network_security_groups.get(RG, "nsg-sync").id
    assert created["diff"]["after"]["rules"][0]["source"] == nvas and created["diff"]["after"]["subnet_nsg"] == created["nsg"]["id"]

    # rerun, addresses in another order: nothing to do, nothing sent
    again = run_module("sync_nsg", nsg_args(nva_addresses=list(reversed(NVAS))))
    assert again["changed"] is False and again["writes"] == 0, again
    assert again["diff"]["before"] == again["diff"]["after"]

    # a third NVA and another port: the group only (the subnet has it already)
    grown = run_module("sync_nsg", nsg_args(nva_addresses=NVAS + ["10.10.3.6"], port=3781))
    assert grown["changed"] is True and grown["writes"] == 1, grown
    assert rules_in_azure(network)[0] == ("anycast-sync-allow", 200, "Allow", "Udp", nvas + ["10.10.3.6"], nvas + ["10.10.3.6"], "3781")
    assert grown["diff"]["before"]["rules"][0]["destination_ports"] == ["3780"] and grown["diff"]["after"]["rules"][0]["destination_ports"] == ["3781"]

    # check mode of a change: reported, nothing sent, Azure unchanged
    checked = run_module("sync_nsg", nsg_args(), check=True)
    assert checked["changed"] is True and checked["writes"] == 0, checked
    assert rules_in_azure(network)[0][6] == "3781"


def test_the_subnets_other_properties_are_kept(run_module, network):
    # the sync subnet already has a route table (through the collection's module) and a service endpoint
    table = run_module("route_table", dict(name="rt-sync", resource_group=RG, location="westeurope", routes=[], subnets=[SYNC]))
    assert table["changed"] is True, table
    subnet = network.subnets.get(RG, HUB_VNET, "snet-sync")
    subnet.service_endpoints = [models.ServiceEndpointPropertiesFormat(service="Microsoft.Storage")]
    network.subnets.begin_create_or_update(RG, HUB_VNET, "snet-sync", subnet).result()

    assert run_module("sync_nsg", nsg_args())["writes"] == 2
    subnet = network.subnets.get(RG, HUB_VNET, "snet-sync")
    assert subnet.network_security_group.id.endswith("/networkSecurityGroups/nsg-sync")
    assert subnet.route_table.id.endswith("/routeTables/rt-sync")
    assert [e.service for e in subnet.service_endpoints] == ["Microsoft.Storage"]
    assert subnet.address_prefix == "10.10.3.0/24"
    # and the route table module, rerun, sees its association untouched
    rerun = run_module("route_table", dict(name="rt-sync", resource_group=RG, location="westeurope", routes=[], subnets=[SYNC]))
    assert rerun["changed"] is False and rerun["writes"] == 0, rerun


def test_an_nsg_the_module_does_not_manage_is_replaced_only_when_told(run_module, network):
    theirs = other_nsg(network, "nsg-theirs")
    subnet = network.subnets.get(RG, HUB_VNET, "snet-sync")
    subnet.network_security_group = models.NetworkSecurityGroup(id=theirs.id)
    network.subnets.begin_create_or_update(RG, HUB_VNET, "snet-sync", subnet).result()

    refused = run_module("sync_nsg", nsg_args())
    assert refused["failed"] and refused["writes"] == 0, refused
    assert refused["msg"].startswith("subnet:") and "nsg-theirs" in refused["msg"] and "replace_nsg" in refused["msg"]
    assert nsg_of(network) == "nsg-theirs"
    with pytest.raises(ResourceNotFoundError):
        network.network_security_groups.get(RG, "nsg-sync")

    planned = run_module("sync_nsg", nsg_args(replace_nsg=True), check=True)
    assert planned["changed"] is True and planned["writes"] == 0 and planned["diff"]["before"]["subnet_nsg"] == theirs.id
    replaced = run_module("sync_nsg", nsg_args(replace_nsg=True))
    assert replaced["changed"] is True and replaced["writes"] == 2 and replaced["replaced"] == theirs.id, replaced
    assert nsg_of(network) == "nsg-sync"
    assert run_module("sync_nsg", nsg_args())["writes"] == 0


def rule(name, priority, protocol="Udp", port="3780", source="VirtualNetwork", access="Allow", direction="Inbound"):
    return {"name": name, "properties": {"protocol": protocol, "access": access, "direction": direction, "priority": priority,
                                         "sourceAddressPrefix": source, "sourcePortRange": "*", "destinationAddressPrefix": "*",
                                         "destinationPortRange": port}}


def test_the_groups_other_rules_are_kept_and_checked(run_module, network):
    # rules someone else put in the group (a policy, an operator) stay; the module adds its own two
    other_nsg(network, "nsg-sync", [rule("ssh", 300, protocol="Tcp", port="22"), rule("dns-out", 200, port="53", direction="Outbound")])
    added = run_module("sync_nsg", nsg_args())
    assert added["changed"] is True and added["writes"] == 2, added
    assert [r[0] for r in rules_in_azure(network)] == ["anycast-sync-allow", "anycast-sync-deny", "dns-out", "ssh"]
    assert run_module("sync_nsg", nsg_args())["writes"] == 0

    # another inbound rule at the module's priority + 1: Azure would refuse the group (SecurityRuleConflict); refused first
    other_nsg(network, "nsg-sync", [rule("app", 301, protocol="Tcp", port="443")])
    clash = run_module("sync_nsg", nsg_args(priority=300))
    assert clash["failed"] and clash["writes"] == 0 and clash["msg"].startswith("priority:") and "'app'" in clash["msg"], clash

    # another rule, evaluated first, admits the sync port from the whole VNet: the deny would not protect it
    other_nsg(network, "nsg-sync", [rule("open-sync", 150)])
    shadowed = run_module("sync_nsg", nsg_args())
    assert shadowed["failed"] and shadowed["writes"] == 0 and shadowed["msg"].startswith("priority:"), shadowed
    assert "open-sync" in shadowed["msg"] and "VirtualNetwork" in shadowed["msg"]
    # below it, the module's rules come first: accepted
    assert run_module("sync_nsg", nsg_args(priority=120))["changed"] is True


@pytest.mark.parametrize("args, field, text", [
    (nsg_args(nva_addresses=["10.10.3.4", "10.10.3.256"]), "nva_addresses[1]:", "not a valid IPv4 address"),
    (nsg_args(nva_addresses=["10.10.3.4", "10.10.3.4"]), "nva_addresses[1]:", "already listed"),
    (nsg_args(nva_addresses=[]), "nva_addresses:", "at least one"),
    (nsg_args(nva_addresses=["10.10.3.4", "10.10.2.4"]), "nva_addresses[1]:", "not in the sync subnet"),
    (nsg_args(port=0), "port:", "1-65535"),
    (nsg_args(port=65536), "port:", "1-65535"),
    (nsg_args(priority=99), "priority:", "100-4095"),
    (nsg_args(priority=4096), "priority:", "100-4095"),
    (nsg_args(subnet={"virtual_network": HUB_VNET, "name": "RouteServerSubnet"}), "subnet.name:", "no network security group"),
    (nsg_args(subnet={"virtual_network": HUB_VNET, "name": "snet-nope"}), "subnet:", "not found"),
    (nsg_args(name="nsg sync"), "name:", "not a valid Azure resource name"),
    (nsg_args(location="northeurope"), "location:", "not the region"),
], ids=["address-malformed", "address-twice", "no-address", "address-outside-subnet", "port-zero", "port-too-high", "priority-low",
        "priority-high", "route-server-subnet", "missing-subnet", "bad-name", "other-region"])
def test_bad_input_fails_naming_the_option_with_no_write(run_module, network, args, field, text):
    failed = run_module("sync_nsg", args)
    assert failed["failed"] and failed["writes"] == 0, failed
    assert failed["msg"].startswith(field) and text in failed["msg"], failed["msg"]
    assert failed["error"]["field"] == field[:-1]
    assert nsg_of(network) is None
