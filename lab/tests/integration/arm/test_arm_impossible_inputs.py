"""Well-formed but impossible requests, sent directly with the real SDK: the emulator refuses each the way ARM does
(status and error code), so a module that forgets one of its own checks fails against it, and stores nothing.

Where ARM's exact code could not be found the code is the emulator's own (see the comments over the codes in
anycast_lab/arm/validation.py and route_server_validation.py); a route table in another region than its subnet gets
ARM's InvalidResourceReference."""
import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.network import models

from anycast_lab.arm.client import RESOURCE_GROUP as RG

HUB_VNET, SPOKE_VNET = "vnet-hub-weu", "vnet-spoke-weu"


def _refused(arm_emulator, call, code, field):
    """call() is answered 400 `code` naming `field`, and no resource changed."""
    before = arm_emulator.state()["resources"]
    with pytest.raises(HttpResponseError) as caught:
        call()
    assert caught.value.status_code == 400 and caught.value.error.code == code, caught.value.message
    assert field in caught.value.error.message, caught.value.error.message
    assert arm_emulator.state()["resources"] == before
    return caught.value.error.message


def _peer(net, route_server, peer_ip, name="nva1"):
    return net.virtual_hub_bgp_connection.begin_create_or_update(RG, route_server, name, {"properties": {"peerIp": peer_ip, "peerAsn": 65001}})


@pytest.mark.parametrize("peer_ip, code, words", [
    ("10.10.1.4", "BgpConnectionPeerIpIsVirtualRouterIp", "the Route Server itself"),
    ("10.10.1.5", "BgpConnectionPeerIpIsVirtualRouterIp", "the Route Server itself"),
    ("10.10.1.20", "BgpConnectionPeerIpInRouteServerSubnet", "inside RouteServerSubnet"),
    ("10.10.2.0", "BgpConnectionPeerIpIsSubnetReservedAddress", "the first four and the last"),
    ("10.10.2.1", "BgpConnectionPeerIpIsSubnetReservedAddress", "the first four and the last"),
    ("10.10.2.3", "BgpConnectionPeerIpIsSubnetReservedAddress", "the first four and the last"),
    ("10.10.2.255", "BgpConnectionPeerIpIsSubnetReservedAddress", "the first four and the last"),
    ("10.10.200.4", "BgpConnectionPeerIpNotInVirtualNetworkSubnet", f"in no subnet of virtual network {HUB_VNET}"),
    ("10.99.0.4", "BgpConnectionPeerIpNotInVirtualNetworkSubnet", "directly peered"),
    ("10.11.1.4", "BgpConnectionPeerIpNotInVirtualNetworkSubnet", "directly peered"),  # the spoke, not peered
])
def test_a_peer_no_nva_can_be_is_refused(arm_emulator, net, route_server, peer_ip, code, words):
    message = _refused(arm_emulator, lambda: _peer(net, route_server, peer_ip), code, "properties.peerIp")
    assert words in message
    # the first usable address of the NVA subnet is fine
    assert _peer(net, route_server, "10.10.2.4").result().provisioning_state == "Succeeded"


def _peer_hub_with_spoke(arm_emulator, net, state="Connected"):
    hub = net.virtual_networks.get(RG, HUB_VNET)
    hub.virtual_network_peerings = [models.VirtualNetworkPeering(
        name="hub-to-spoke", remote_virtual_network=models.SubResource(id=arm_emulator.rid(f"virtualNetworks/{SPOKE_VNET}")),
        remote_address_space=models.AddressSpace(address_prefixes=["10.11.0.0/16"]), peering_state=state)]
    net.virtual_networks.begin_create_or_update(RG, HUB_VNET, hub).result()


def test_a_peer_in_a_directly_peered_vnet_is_accepted_with_the_same_subnet_rules(arm_emulator, net, route_server):
    _peer_hub_with_spoke(arm_emulator, net, state="Initiated")  # not Connected: as if not peered
    _refused(arm_emulator, lambda: _peer(net, route_server, "10.11.1.4"), "BgpConnectionPeerIpNotInVirtualNetworkSubnet", "properties.peerIp")
    _peer_hub_with_spoke(arm_emulator, net)
    _refused(arm_emulator, lambda: _peer(net, route_server, "10.11.1.255"), "BgpConnectionPeerIpIsSubnetReservedAddress", "properties.peerIp")
    _refused(arm_emulator, lambda: _peer(net, route_server, "10.11.200.4"), "BgpConnectionPeerIpNotInVirtualNetworkSubnet", SPOKE_VNET)
    assert _peer(net, route_server, "10.11.1.4").result().peer_ip == "10.11.1.4"


def _table(net, name="rt-app", routes=(), location="westeurope"):
    return net.route_tables.begin_create_or_update(RG, name, {"location": location, "properties": {"routes": list(routes)}})


def _with_table(subnet_or_vnet, table_id, subnet_name=None):
    subnets = subnet_or_vnet.subnets if subnet_name else [subnet_or_vnet]
    for subnet in subnets:
        if subnet_name is None or subnet.name == subnet_name:
            subnet.route_table = models.RouteTable(id=table_id)
    return subnet_or_vnet


def test_a_route_table_on_route_server_subnet_is_refused(arm_emulator, net):
    table = _table(net).result()
    subnet = _with_table(net.subnets.get(RG, HUB_VNET, "RouteServerSubnet"), table.id)
    _refused(arm_emulator, lambda: net.subnets.begin_create_or_update(RG, HUB_VNET, "RouteServerSubnet", subnet),
             "RouteTableNotAllowedOnRouteServerSubnet", "properties.routeTable")
    vnet = _with_table(net.virtual_networks.get(RG, HUB_VNET), table.id, "RouteServerSubnet")  # embedded in the VNet's PUT
    _refused(arm_emulator, lambda: net.virtual_networks.begin_create_or_update(RG, HUB_VNET, vnet),
             "RouteTableNotAllowedOnRouteServerSubnet", "properties.subnets[0].routeTable")
    # any other subnet of the hub VNet takes it
    subnet = _with_table(net.subnets.get(RG, HUB_VNET, "snet-nva"), table.id)
    assert net.subnets.begin_create_or_update(RG, HUB_VNET, "snet-nva", subnet).result().route_table.id == table.id


def test_a_route_table_on_a_subnet_of_another_region_is_refused(arm_emulator, net):
    table = _table(net).result()  # westeurope
    net.virtual_networks.begin_create_or_update(RG, "vnet-spoke-neu", {"location": "northeurope", "properties": {
        "addressSpace": {"addressPrefixes": ["10.21.0.0/16"]},
        "subnets": [{"name": "snet-app", "properties": {"addressPrefix": "10.21.1.0/24"}}]}}).result()
    subnet = _with_table(net.subnets.get(RG, "vnet-spoke-neu", "snet-app"), table.id)
    message = _refused(arm_emulator, lambda: net.subnets.begin_create_or_update(RG, "vnet-spoke-neu", "snet-app", subnet),
                       "InvalidResourceReference", "properties.routeTable")
    assert "both resources are in the same region" in message and "westeurope" in message and "northeurope" in message
    vnet = _with_table(net.virtual_networks.get(RG, "vnet-spoke-neu"), table.id, "snet-app")
    _refused(arm_emulator, lambda: net.virtual_networks.begin_create_or_update(RG, "vnet-spoke-neu", vnet),
             "InvalidResourceReference", "properties.subnets[0].properties.routeTable")
    # a table of the VNet's own region is fine (display name or name)
    local = _table(net, "rt-neu", location="North Europe").result()
    subnet = _with_table(net.subnets.get(RG, "vnet-spoke-neu", "snet-app"), local.id)
    assert net.subnets.begin_create_or_update(RG, "vnet-spoke-neu", "snet-app", subnet).result().route_table.id == local.id


def _routes(count, start=0):
    return [{"name": f"r{i}", "properties": {"addressPrefix": f"10.{100 + i // 256}.{i % 256}.0/24", "nextHopType": "None"}}
            for i in range(start, start + count)]


def test_more_than_400_routes_are_refused(arm_emulator, net):
    _refused(arm_emulator, lambda: _table(net, routes=_routes(401)), "RouteTableRouteLimitReached", "properties.routes")
    table = _table(net, routes=_routes(400)).result()
    assert len(table.routes) == 400
    # one more as a child resource: refused too; changing one of the 400 is not
    _refused(arm_emulator, lambda: net.routes.begin_create_or_update(RG, "rt-app", "r400", _routes(1, 400)[0]),
             "RouteTableRouteLimitReached", "at most 400")
    route = net.routes.begin_create_or_update(RG, "rt-app", "r0", {"properties": {"addressPrefix": "10.99.0.0/24", "nextHopType": "None"}}).result()
    assert route.address_prefix == "10.99.0.0/24"
