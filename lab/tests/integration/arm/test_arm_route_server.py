"""Route Server (virtualHubs) through the real azure-mgmt-network SDK."""
import concurrent.futures
import time

import pytest
import requests
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from anycast_lab.arm.client import RESOURCE_GROUP as RG, EmulatorError

ROUTE_ROLES = {"RouteServiceRole_IN_0", "RouteServiceRole_IN_1"}


def _create_route_server(emu, net, name="rs-new"):
    pip = net.public_ip_addresses.begin_create_or_update(RG, f"{name}-pip", {"location": "westeurope", "sku": {"name": "Standard"},
                                                                             "properties": {"publicIPAllocationMethod": "Static"}}).result()
    hub = net.virtual_hubs.begin_create_or_update(RG, name, {"location": "westeurope", "properties": {"sku": "Standard"}}).result()
    config = net.virtual_hub_ip_configuration.begin_create_or_update(RG, name, "ipconfig1", {"properties": {
        "subnet": {"id": emu.rid("virtualNetworks/vnet-hub-weu/subnets/RouteServerSubnet")}, "publicIPAddress": {"id": pip.id}}}).result()
    return hub, config


def _wait_routing(net, name, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        hub = net.virtual_hubs.get(RG, name)
        if hub.routing_state == "Provisioned":
            return hub
        time.sleep(0.1)
    raise AssertionError(f"routing of {name} never provisioned")


def test_create_route_server_gives_two_router_ips_and_asn(arm_emulator, net):
    hub, config = _create_route_server(arm_emulator, net)
    assert hub.provisioning_state == "Succeeded" and hub.kind == "RouteServer"
    assert config.private_ip_address == "10.10.1.4" and config.provisioning_state == "Succeeded"
    hub = _wait_routing(net, "rs-new")
    assert hub.virtual_router_asn == 65515
    assert hub.virtual_router_ips == ["10.10.1.4", "10.10.1.5"]
    assert hub.sku == "Standard" and hub.allow_branch_to_branch_traffic is False
    assert [c.id for c in hub.ip_configurations] == [config.id]
    # The PUT answered while running: provisioningState Updating plus an Azure-AsyncOperation URL, as Azure does.
    puts = [r for r in arm_emulator.arm_requests("write") if r["path"].endswith("/virtualHubs/rs-new")]
    assert [r["status"] for r in puts] == [201]


def test_put_answer_is_updating_with_async_operation_header(arm_emulator):
    token = arm_emulator.credential().get_token("https://management.azure.com/.default").token
    url = f"{arm_emulator.endpoint}{arm_emulator.rid('virtualHubs/rs-raw')}?api-version=2025-07-01"
    answer = requests.put(url, json={"location": "westeurope", "properties": {"sku": "Standard"}},
                          headers={"Authorization": f"Bearer {token}"}, verify=arm_emulator.ca_bundle, timeout=10)
    assert answer.status_code == 201
    body = answer.json()
    assert body["properties"]["provisioningState"] == "Updating"
    assert body["id"] == arm_emulator.rid("virtualHubs/rs-raw") and body["type"] == "Microsoft.Network/virtualHubs"
    assert "/providers/Microsoft.Network/locations/westeurope/operations/" in answer.headers["Azure-AsyncOperation"]
    status = requests.get(answer.headers["Azure-AsyncOperation"], headers={"Authorization": f"Bearer {token}"},
                          verify=arm_emulator.ca_bundle, timeout=10).json()
    assert status == {"status": "InProgress"}


def test_routing_state_lags_and_peer_put_is_refused_meanwhile(arm_emulator, net):
    arm_emulator.settings(routing_delay=3.0)
    _create_route_server(arm_emulator, net)
    hub = net.virtual_hubs.get(RG, "rs-new")
    assert hub.provisioning_state == "Succeeded" and hub.routing_state == "Provisioning"
    with pytest.raises(HttpResponseError) as caught:
        net.virtual_hub_bgp_connection.begin_create_or_update(RG, "rs-new", "nva1", {"properties": {"peerIp": "10.10.2.4", "peerAsn": 65001}})
    assert caught.value.status_code == 400
    assert caught.value.error.code == "HubBgpConnectionParentHubMustHaveProvisionedRoutingState"
    _wait_routing(net, "rs-new")
    peer = net.virtual_hub_bgp_connection.begin_create_or_update(RG, "rs-new", "nva1", {"properties": {"peerIp": "10.10.2.4", "peerAsn": 65001}}).result()
    assert peer.provisioning_state == "Succeeded" and peer.connection_state == "Connected"


def test_peers_list_get_delete(net, route_server):
    for index, ip in enumerate(("10.10.2.4", "10.10.2.5")):
        net.virtual_hub_bgp_connection.begin_create_or_update(RG, route_server, f"nva{index + 1}",
                                                              {"properties": {"peerIp": ip, "peerAsn": 65001}}).result()
    peers = {p.name: (p.peer_ip, p.peer_asn, p.connection_state) for p in net.virtual_hub_bgp_connections.list(RG, route_server)}
    assert peers == {"nva1": ("10.10.2.4", 65001, "Connected"), "nva2": ("10.10.2.5", 65001, "Connected")}
    hub = net.virtual_hubs.get(RG, route_server)
    assert sorted(c.id.rsplit("/", 1)[1] for c in hub.bgp_connections) == ["nva1", "nva2"]
    net.virtual_hub_bgp_connection.begin_delete(RG, route_server, "nva1").result()
    with pytest.raises(ResourceNotFoundError):
        net.virtual_hub_bgp_connection.get(RG, route_server, "nva1")
    assert [p.name for p in net.virtual_hub_bgp_connections.list(RG, route_server)] == ["nva2"]
    # deleting what is gone is not an error in ARM (204)
    net.virtual_hub_bgp_connection.begin_delete(RG, route_server, "nva1").result()


def test_branch_to_branch_update_in_place(net, route_server):
    hub = net.virtual_hubs.get(RG, route_server)
    hub.allow_branch_to_branch_traffic = True
    updated = net.virtual_hubs.begin_create_or_update(RG, route_server, hub).result()
    assert updated.allow_branch_to_branch_traffic is True
    assert updated.virtual_router_ips == ["10.10.1.4", "10.10.1.5"]
    assert net.virtual_hubs.get(RG, route_server).etag != hub.etag


def test_learned_and_advertised_routes_lro(arm_emulator, net, route_server):
    net.virtual_hub_bgp_connection.begin_create_or_update(RG, route_server, "nva1", {"properties": {"peerIp": "10.10.2.4", "peerAsn": 65001}}).result()
    learned = {role: [{"localAddress": local, "network": "10.250.0.10/32", "nextHop": "10.10.2.4", "sourcePeer": "10.10.2.4",
                       "origin": "EBgp", "asPath": "65001", "weight": 32768}] for role, local in zip(sorted(ROUTE_ROLES), ("10.10.1.4", "10.10.1.5"))}
    arm_emulator.set_routes(route_server, "nva1", learned=learned)
    routes = net.virtual_hub_bgp_connections.begin_list_learned_routes(RG, route_server, "nva1").result()
    assert set(routes) == ROUTE_ROLES
    assert [r.network for r in routes["RouteServiceRole_IN_0"]] == ["10.250.0.10/32"]
    assert routes["RouteServiceRole_IN_1"][0].as_path == "65001" and routes["RouteServiceRole_IN_1"][0].local_address == "10.10.1.5"
    advertised = net.virtual_hub_bgp_connections.begin_list_advertised_routes(RG, route_server, "nva1").result()
    assert [r.network for r in advertised["RouteServiceRole_IN_0"]] == ["10.10.0.0/16"]
    # 202 + Location, then the Location answers 200 with the body: exactly the shape of the official example
    posts = arm_emulator.arm_requests("routes")
    assert [r["status"] for r in posts] == [202, 202]
    assert arm_emulator.writes() == 1  # only the peer PUT; listing routes is a read


def test_routes_of_a_missing_peer_are_404(net, route_server):
    with pytest.raises(ResourceNotFoundError):
        net.virtual_hub_bgp_connections.begin_list_learned_routes(RG, route_server, "nope").result()


def test_at_most_eight_peers(arm_emulator, net, route_server):
    for index in range(8):
        net.virtual_hub_bgp_connection.begin_create_or_update(RG, route_server, f"nva{index}",
                                                              {"properties": {"peerIp": f"10.10.2.{10 + index}", "peerAsn": 65001}}).result()
    with pytest.raises(HttpResponseError) as caught:
        net.virtual_hub_bgp_connection.begin_create_or_update(RG, route_server, "nva8", {"properties": {"peerIp": "10.10.2.30", "peerAsn": 65001}})
    assert caught.value.status_code == 400 and caught.value.error.code == "VirtualHubBgpConnectionLimitReached"
    assert "at most 8" in caught.value.error.message
    # updating one of the eight is still fine
    net.virtual_hub_bgp_connection.begin_create_or_update(RG, route_server, "nva0", {"properties": {"peerIp": "10.10.2.10", "peerAsn": 65001}}).result()
    assert len(list(net.virtual_hub_bgp_connections.list(RG, route_server))) == 8
    assert arm_emulator.state()["resources"][arm_emulator.rid(f"virtualHubs/{route_server}/bgpConnections/nva0")]["properties"]["peerAsn"] == 65001


def test_overlapping_writes_to_one_hub_get_409(arm_emulator, net, route_server):
    arm_emulator.settings(op_seconds=2.0)
    first = net.virtual_hub_bgp_connection.begin_create_or_update(RG, route_server, "nva1", {"properties": {"peerIp": "10.10.2.4", "peerAsn": 65001}})
    with pytest.raises(HttpResponseError) as caught:
        net.virtual_hub_bgp_connection.begin_create_or_update(RG, route_server, "nva2", {"properties": {"peerIp": "10.10.2.5", "peerAsn": 65001}})
    assert caught.value.status_code == 409 and caught.value.error.code == "AnotherOperationInProgress"
    hub = net.virtual_hubs.get(RG, route_server)  # the hub itself is locked too
    hub.allow_branch_to_branch_traffic = True
    with pytest.raises(HttpResponseError, match="AnotherOperationInProgress"):
        net.virtual_hubs.begin_create_or_update(RG, route_server, hub)
    assert first.result().provisioning_state == "Succeeded"
    arm_emulator.settings(op_seconds=0.2)
    net.virtual_hub_bgp_connection.begin_create_or_update(RG, route_server, "nva2", {"properties": {"peerIp": "10.10.2.5", "peerAsn": 65001}}).result()


def test_parallel_clients_with_retry_all_succeed(arm_emulator, route_server):
    """Four clients registering four peers at once: 409s happen, a retry loop gets everyone through."""
    def register(index):
        client = arm_emulator.network_client()
        for _attempt in range(100):
            try:
                return client.virtual_hub_bgp_connection.begin_create_or_update(
                    RG, route_server, f"nva{index}", {"properties": {"peerIp": f"10.10.2.{4 + index}", "peerAsn": 65001}}).result().name
            except HttpResponseError as exc:
                if exc.error is None or exc.error.code != "AnotherOperationInProgress":
                    raise
                time.sleep(0.1)
        raise AssertionError("never got through")
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        names = sorted(pool.map(register, range(4)))
    assert names == ["nva0", "nva1", "nva2", "nva3"]
    statuses = [r["status"] for r in arm_emulator.arm_requests("write")]
    assert statuses.count(201) == 4 and statuses.count(409) >= 1


@pytest.mark.parametrize("props, code", [
    ({"peerIp": "10.10.2.300", "peerAsn": 65001}, "InvalidBgpConnectionPeerIp"),
    ({"peerAsn": 65001}, "InvalidBgpConnectionPeerIp"),
    ({"peerIp": "10.10.2.4", "peerAsn": 65515}, "BgpConnectionPeerAsnIsReserved"),
    ({"peerIp": "10.10.2.4", "peerAsn": 12076}, "BgpConnectionPeerAsnIsReserved"),
    ({"peerIp": "10.10.2.4", "peerAsn": "65001"}, "InvalidBgpConnectionPeerAsn"),
])
def test_bad_peer_bodies_are_400_naming_the_field(arm_emulator, net, route_server, props, code):
    with pytest.raises(HttpResponseError) as caught:
        net.virtual_hub_bgp_connection.begin_create_or_update(RG, route_server, "bad", {"properties": props})
    assert caught.value.status_code == 400 and caught.value.error.code == code
    assert "properties.peer" in caught.value.error.message
    assert arm_emulator.rid(f"virtualHubs/{route_server}/bgpConnections/bad") not in arm_emulator.state()["resources"]


def test_changing_a_peer_ip_in_place_is_refused(net, route_server):
    net.virtual_hub_bgp_connection.begin_create_or_update(RG, route_server, "nva1", {"properties": {"peerIp": "10.10.2.4", "peerAsn": 65001}}).result()
    with pytest.raises(HttpResponseError) as caught:
        net.virtual_hub_bgp_connection.begin_create_or_update(RG, route_server, "nva1", {"properties": {"peerIp": "10.10.2.9", "peerAsn": 65001}})
    assert caught.value.error.code == "PropertyChangeNotAllowed" and "properties.peerIp" in caught.value.error.message


def test_ip_configuration_must_use_route_server_subnet(arm_emulator, net):
    arm_emulator.settings(routing_delay=0)
    net.virtual_hubs.begin_create_or_update(RG, "rs-x", {"location": "westeurope", "properties": {"sku": "Standard"}}).result()
    with pytest.raises(HttpResponseError) as caught:
        net.virtual_hub_ip_configuration.begin_create_or_update(RG, "rs-x", "ipconfig1", {"properties": {
            "subnet": {"id": arm_emulator.rid("virtualNetworks/vnet-hub-weu/subnets/snet-nva")}}})
    assert caught.value.error.code == "InvalidVirtualHubIpConfigurationSubnet"
    # a hub without router instances has no routing: state None, and no peer can be added
    assert net.virtual_hubs.get(RG, "rs-x").routing_state == "None"
    with pytest.raises(HttpResponseError, match="HubBgpConnectionParentHubMustHaveProvisionedRoutingState"):
        net.virtual_hub_bgp_connection.begin_create_or_update(RG, "rs-x", "nva1", {"properties": {"peerIp": "10.10.2.4", "peerAsn": 65001}})
    configs = list(net.virtual_hub_ip_configuration.list(RG, "rs-x"))
    assert configs == []


def test_delete_hub_removes_its_children(arm_emulator, net, route_server):
    net.virtual_hub_bgp_connection.begin_create_or_update(RG, route_server, "nva1", {"properties": {"peerIp": "10.10.2.4", "peerAsn": 65001}}).result()
    net.virtual_hubs.begin_delete(RG, route_server).result()
    with pytest.raises(ResourceNotFoundError) as caught:
        net.virtual_hubs.get(RG, route_server)
    assert caught.value.error.code == "ResourceNotFound"
    with pytest.raises(ResourceNotFoundError) as caught:
        net.virtual_hub_bgp_connection.get(RG, route_server, "nva1")
    assert caught.value.error.code == "ParentResourceNotFound"
    assert not [rid for rid in arm_emulator.state()["resources"] if "/virtualHubs/" in rid]


def test_deleting_the_ip_configuration_removes_the_router_ips(net, route_server):
    net.virtual_hub_ip_configuration.begin_delete(RG, route_server, "ipconfig1").result()
    hub = net.virtual_hubs.get(RG, route_server)
    assert hub.virtual_router_ips == [] and hub.ip_configurations == [] and hub.routing_state == "None"


def test_tags_patch(net, route_server):
    hub = net.virtual_hubs.update_tags(RG, route_server, {"tags": {"owner": "netops"}})
    assert hub.tags == {"owner": "netops"}
    assert net.virtual_hubs.get(RG, route_server).tags == {"owner": "netops"}


def test_a_second_route_server_cannot_share_the_subnet(arm_emulator, net, route_server):
    net.virtual_hubs.begin_create_or_update(RG, "rs-two", {"location": "westeurope", "properties": {"sku": "Standard"}}).result()
    with pytest.raises(HttpResponseError) as caught:
        net.virtual_hub_ip_configuration.begin_create_or_update(RG, "rs-two", "ipconfig1", {"properties": {
            "subnet": {"id": arm_emulator.rid("virtualNetworks/vnet-hub-weu/subnets/RouteServerSubnet")}}})
    assert caught.value.error.code == "SubnetInUseByAnotherVirtualHub" and route_server in caught.value.error.message


def test_routing_lag_set_and_ended_by_the_test(arm_emulator, net, route_server):
    """A lag far longer than any client start-up, ended by the test when it has seen the refusal."""
    assert arm_emulator.routing_lag(route_server, 600) == {"routingState": "Provisioning"}
    with pytest.raises(HttpResponseError, match="HubBgpConnectionParentHubMustHaveProvisionedRoutingState"):
        net.virtual_hub_bgp_connection.begin_create_or_update(RG, route_server, "nva1", {"properties": {"peerIp": "10.10.2.4", "peerAsn": 65001}})
    assert arm_emulator.routing_lag(route_server, 0) == {"routingState": "Provisioned"}
    peer = net.virtual_hub_bgp_connection.begin_create_or_update(RG, route_server, "nva1", {"properties": {"peerIp": "10.10.2.4", "peerAsn": 65001}})
    assert peer.result().provisioning_state == "Succeeded"
    with pytest.raises(EmulatorError, match="ResourceNotFound"):
        arm_emulator.routing_lag("nope", 1)
