"""Route tables, routes, subnets, VNets, NICs and public IPs through the real SDK."""
import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.network import models

from anycast_lab.arm.client import RESOURCE_GROUP as RG

ANYCAST_ROUTE = {"name": "anycast", "properties": {"addressPrefix": "10.250.0.10/32", "nextHopType": "VirtualAppliance",
                                                   "nextHopIpAddress": "10.10.2.4"}}


def _table(net, name="rt-app", routes=(ANYCAST_ROUTE,), **props):
    body = {"location": "westeurope", "properties": dict(props, routes=list(routes))}
    return net.route_tables.begin_create_or_update(RG, name, body).result()


def test_route_table_crud(arm_emulator, net):
    table = _table(net, disableBgpRoutePropagation=True)
    assert table.provisioning_state == "Succeeded" and table.disable_bgp_route_propagation is True
    assert [(r.name, r.address_prefix, r.next_hop_type, r.next_hop_ip_address) for r in table.routes] == [
        ("anycast", "10.250.0.10/32", "VirtualAppliance", "10.10.2.4")]
    assert table.routes[0].id == arm_emulator.rid("routeTables/rt-app/routes/anycast")
    # routes as child resources
    net.routes.begin_create_or_update(RG, "rt-app", "default", {"properties": {"addressPrefix": "0.0.0.0/0", "nextHopType": "Internet"}}).result()
    assert sorted(r.name for r in net.routes.list(RG, "rt-app")) == ["anycast", "default"]
    assert net.routes.get(RG, "rt-app", "default").next_hop_type == "Internet"
    net.routes.begin_delete(RG, "rt-app", "default").result()
    # a table PUT is authoritative for its routes: one write replaces the whole list
    table = _table(net, routes=[{"name": "r2", "properties": {"addressPrefix": "10.251.0.0/24", "nextHopType": "None"}}])
    assert [r.name for r in table.routes] == ["r2"]
    assert [t.name for t in net.route_tables.list(RG)] == ["rt-app"]
    assert [t.name for t in net.route_tables.list_all()] == ["rt-app"]
    net.route_tables.begin_delete(RG, "rt-app").result()
    assert list(net.route_tables.list(RG)) == []
    assert arm_emulator.writes() == 5


def test_subnet_association_is_reflected_both_ways(arm_emulator, net):
    table = _table(net)
    subnet = net.subnets.get(RG, "vnet-spoke-weu", "snet-app")
    subnet.route_table = models.RouteTable(id=table.id)
    subnet = net.subnets.begin_create_or_update(RG, "vnet-spoke-weu", "snet-app", subnet).result()
    assert subnet.route_table.id == table.id
    assert [s.id for s in net.route_tables.get(RG, "rt-app").subnets] == [arm_emulator.rid("virtualNetworks/vnet-spoke-weu/subnets/snet-app")]
    vnet = net.virtual_networks.get(RG, "vnet-spoke-weu")
    assert vnet.subnets[0].route_table.id == table.id
    # in use: the table cannot go
    with pytest.raises(HttpResponseError) as caught:
        net.route_tables.begin_delete(RG, "rt-app")
    assert caught.value.status_code == 400 and caught.value.error.code == "InUseRouteTableCannotBeDeleted"
    subnet.route_table = None
    net.subnets.begin_create_or_update(RG, "vnet-spoke-weu", "snet-app", subnet).result()
    assert net.route_tables.get(RG, "rt-app").subnets is None
    net.route_tables.begin_delete(RG, "rt-app").result()


def test_subnet_with_missing_route_table_is_refused(arm_emulator, net):
    subnet = net.subnets.get(RG, "vnet-spoke-weu", "snet-app")
    subnet.route_table = models.RouteTable(id=arm_emulator.rid("routeTables/nope"))
    with pytest.raises(HttpResponseError) as caught:
        net.subnets.begin_create_or_update(RG, "vnet-spoke-weu", "snet-app", subnet)
    assert caught.value.error.code == "InvalidResourceReference" and "routeTable" in caught.value.error.message


@pytest.mark.parametrize("route, code, field", [
    ({"addressPrefix": "10.0.0.0/8", "nextHopType": "Firewall"}, "InvalidNextHopType", "nextHopType"),
    ({"addressPrefix": "10.0.0.0/8", "nextHopType": "VirtualAppliance"}, "MissingNextHopIpAddress", "nextHopIpAddress"),
    ({"addressPrefix": "10.0.0.0/8", "nextHopType": "VirtualAppliance", "nextHopIpAddress": "10.10.2.999"}, "InvalidNextHopIpAddress", "nextHopIpAddress"),
    ({"addressPrefix": "10.0.0.0/8", "nextHopType": "Internet", "nextHopIpAddress": "10.10.2.4"}, "NextHopIpAddressNotAllowed", "nextHopIpAddress"),
    ({"addressPrefix": "10.0.0.1/8", "nextHopType": "Internet"}, "InvalidAddressPrefixFormat", "addressPrefix"),
    ({"addressPrefix": "banana", "nextHopType": "Internet"}, "InvalidAddressPrefixFormat", "addressPrefix"),
])
def test_bad_routes_are_400_naming_the_property(arm_emulator, net, route, code, field):
    with pytest.raises(HttpResponseError) as caught:
        _table(net, routes=[{"name": "bad", "properties": route}])
    assert caught.value.status_code == 400 and caught.value.error.code == code
    assert f"properties.routes[0].properties.{field}" in caught.value.error.message
    with pytest.raises(HttpResponseError) as caught:  # the same check on the child resource
        _table(net, name="rt-ok", routes=[])
        net.routes.begin_create_or_update(RG, "rt-ok", "bad", {"properties": route})
    assert caught.value.error.code == code and f"properties.{field}" in caught.value.error.message
    assert arm_emulator.rid("routeTables/rt-app") not in arm_emulator.state()["resources"]


def test_nic_ip_forwarding(arm_emulator, net):
    nic = net.network_interfaces.get(RG, "nic-nva1-weu")
    assert nic.enable_ip_forwarding is False
    assert nic.ip_configurations[0].private_ip_address == "10.10.2.4"
    assert nic.ip_configurations[0].subnet.id == arm_emulator.rid("virtualNetworks/vnet-hub-weu/subnets/snet-nva")
    nic.enable_ip_forwarding = True
    assert net.network_interfaces.begin_create_or_update(RG, "nic-nva1-weu", nic).result().enable_ip_forwarding is True
    assert net.network_interfaces.get(RG, "nic-nva1-weu").enable_ip_forwarding is True
    subnet = net.subnets.get(RG, "vnet-hub-weu", "snet-nva")
    assert sorted(c.id.split("/")[-3] for c in subnet.ip_configurations) == ["nic-nva1-weu", "nic-nva2-weu"]


def test_nic_address_rules(arm_emulator, net):
    subnet_id = arm_emulator.rid("virtualNetworks/vnet-hub-weu/subnets/snet-nva")
    body = {"location": "westeurope", "properties": {"ipConfigurations": [{"name": "ipconfig1", "properties": {
        "subnet": {"id": subnet_id}, "privateIPAddress": "10.10.2.4", "privateIPAllocationMethod": "Static"}}]}}
    with pytest.raises(HttpResponseError) as caught:
        net.network_interfaces.begin_create_or_update(RG, "nic-x", body)
    assert caught.value.error.code == "PrivateIPAddressInUse"
    body["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"] = "10.11.1.4"
    with pytest.raises(HttpResponseError) as caught:
        net.network_interfaces.begin_create_or_update(RG, "nic-x", body)
    assert caught.value.error.code == "PrivateIPAddressNotInSubnet"
    del body["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"]
    body["properties"]["ipConfigurations"][0]["properties"]["privateIPAllocationMethod"] = "Dynamic"
    nic = net.network_interfaces.begin_create_or_update(RG, "nic-x", body).result()
    assert nic.ip_configurations[0].private_ip_address == "10.10.2.6"  # .4/.5 taken, .1-.3 reserved by Azure


def test_nic_secondary_configuration_takes_the_primary_subnet_and_a_prefix(arm_emulator, net):
    """As the official NetworkInterfaceCreate example: ipconfig2 names no subnet and asks for a /28 of it."""
    subnet_id = arm_emulator.rid("virtualNetworks/vnet-spoke-weu/subnets/snet-app")
    nic = net.network_interfaces.begin_create_or_update(RG, "nic-app", {"location": "westeurope", "properties": {"ipConfigurations": [
        {"name": "ipconfig1", "properties": {"subnet": {"id": subnet_id}}},
        {"name": "ipconfig2", "properties": {"privateIPAddressPrefixLength": 28}}]}}).result()
    first, second = nic.ip_configurations
    assert (first.private_ip_address, first.primary) == ("10.11.1.4", True)
    assert (second.private_ip_address, second.private_ip_address_prefix_length, second.primary) == ("10.11.1.16/28", 28, False)
    assert second.subnet.id == subnet_id
    # the /28 is taken as a whole: a static address inside it is in use, the next dynamic one comes after it
    body = {"location": "westeurope", "properties": {"ipConfigurations": [{"name": "ipconfig1", "properties": {
        "subnet": {"id": subnet_id}, "privateIPAddress": "10.11.1.20", "privateIPAllocationMethod": "Static"}}]}}
    with pytest.raises(HttpResponseError) as caught:
        net.network_interfaces.begin_create_or_update(RG, "nic-other", body)
    assert caught.value.error.code == "PrivateIPAddressInUse"
    body["properties"]["ipConfigurations"][0]["properties"] = {"subnet": {"id": subnet_id}}
    assert net.network_interfaces.begin_create_or_update(RG, "nic-other", body).result().ip_configurations[0].private_ip_address == "10.11.1.5"
    body["properties"]["ipConfigurations"][0]["properties"]["privateIPAddressPrefixLength"] = 23
    with pytest.raises(HttpResponseError) as caught:
        net.network_interfaces.begin_create_or_update(RG, "nic-big", body)
    assert caught.value.error.code == "InvalidRequestFormat" and "privateIPAddressPrefixLength" in caught.value.error.message


def test_vnet_put_is_authoritative_for_subnets_but_keeps_used_ones(arm_emulator, net):
    vnet = net.virtual_networks.get(RG, "vnet-hub-weu")
    before = arm_emulator.state()["resources"]
    vnet.subnets = [s for s in vnet.subnets if s.name not in ("snet-sync", "snet-nva")]
    vnet.address_space.address_prefixes.append("10.12.0.0/16")
    with pytest.raises(HttpResponseError) as caught:  # NICs sit in snet-nva
        net.virtual_networks.begin_create_or_update(RG, "vnet-hub-weu", vnet)
    assert caught.value.error.code == "InUseSubnetCannotBeDeleted"
    assert arm_emulator.state()["resources"] == before  # refused as a whole: nothing changed, snet-sync still there
    vnet = net.virtual_networks.get(RG, "vnet-hub-weu")
    vnet.subnets = [s for s in vnet.subnets if s.name != "snet-sync"]
    vnet = net.virtual_networks.begin_create_or_update(RG, "vnet-hub-weu", vnet).result()
    assert sorted(s.name for s in vnet.subnets) == ["RouteServerSubnet", "snet-nva"]
    with pytest.raises(HttpResponseError) as caught:
        net.subnets.begin_create_or_update(RG, "vnet-hub-weu", "snet-out", {"properties": {"addressPrefix": "10.99.0.0/24"}})
    assert caught.value.error.code == "NetcfgSubnetRangeOutsideVnet"
    with pytest.raises(HttpResponseError) as caught:
        net.subnets.begin_create_or_update(RG, "vnet-hub-weu", "snet-dup", {"properties": {"addressPrefix": "10.10.2.128/25"}})
    assert caught.value.error.code == "NetcfgSubnetRangesOverlap"
    assert arm_emulator.writes() == 4


def test_public_ip(net):
    pip = net.public_ip_addresses.begin_create_or_update(RG, "pip1", {"location": "westeurope", "sku": {"name": "Standard"},
                                                                      "properties": {"publicIPAllocationMethod": "Static"}}).result()
    assert pip.sku.name == "Standard" and pip.ip_address and pip.provisioning_state == "Succeeded"
    assert net.public_ip_addresses.get(RG, "pip1").ip_address == pip.ip_address


@pytest.mark.parametrize("subnets, code, field", [
    ([{"name": "a", "properties": {"addressPrefix": "banana"}}, {"name": "b", "properties": {"addressPrefix": "10.30.1.0/24"}}],
     "InvalidAddressPrefixFormat", "properties.subnets[0].addressPrefix"),
    ([{"name": "a", "properties": {"addressPrefix": "10.30.1.0/24"}}, {"name": "b", "properties": {"addressPrefix": "banana"}}],
     "InvalidAddressPrefixFormat", "properties.subnets[1].addressPrefix"),
    ([{"name": "a", "properties": {"addressPrefix": "10.30.1.0/24"}}, {"name": "A", "properties": {"addressPrefix": "10.30.2.0/24"}}],
     "DuplicateResourceName", "properties.subnets"),
    ([{"name": "a", "properties": {"addressPrefix": "10.30.1.0/24"}}, {"name": "b", "properties": {"addressPrefix": "10.30.1.128/25"}}],
     "NetcfgSubnetRangesOverlap", "properties.subnets[0].addressPrefix 10.30.1.0/24) overlaps subnet 'b'"),
])
def test_bad_embedded_subnets_name_the_field(arm_emulator, net, subnets, code, field):
    body = {"location": "westeurope", "properties": {"addressSpace": {"addressPrefixes": ["10.30.0.0/16"]}, "subnets": subnets}}
    with pytest.raises(HttpResponseError) as caught:
        net.virtual_networks.begin_create_or_update(RG, "vnet-new", body)
    assert caught.value.status_code == 400 and caught.value.error.code == code and field in caught.value.error.message
    assert arm_emulator.rid("virtualNetworks/vnet-new") not in arm_emulator.state()["resources"]


def test_location_cannot_change(net):
    _table(net)
    with pytest.raises(HttpResponseError) as caught:
        net.route_tables.begin_create_or_update(RG, "rt-app", {"location": "northeurope", "properties": {}})
    assert caught.value.error.code == "InvalidResourceLocation" and "'location'" in caught.value.error.message
    assert net.route_tables.get(RG, "rt-app").location == "westeurope"
