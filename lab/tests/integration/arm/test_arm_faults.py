"""Fault injection: what the SDK (and so the modules) meet when Azure misbehaves."""
import time

import pytest
from azure.core.exceptions import HttpResponseError, ServiceResponseError

from anycast_lab.arm.client import RESOURCE_GROUP as RG, EmulatorError

RT_BODY = {"location": "westeurope", "properties": {"routes": []}}


def _puts(emu, suffix):
    return [r["status"] for r in emu.arm_requests("write") if r["path"].endswith(suffix)]


def test_429_with_retry_after_then_success(arm_emulator, net):
    arm_emulator.inject(method="PUT", path=r"/routeTables/rt1$", status=429, retry_after=1)
    started = time.monotonic()
    table = net.route_tables.begin_create_or_update(RG, "rt1", RT_BODY).result()
    assert table.provisioning_state == "Succeeded"
    assert time.monotonic() - started >= 1.0  # the SDK honoured Retry-After
    assert _puts(arm_emulator, "/routeTables/rt1") == [429, 201]
    throttled = arm_emulator.arm_requests("write")[0]
    assert throttled["fault"] is True


def test_500_once_then_success(arm_emulator, net):
    arm_emulator.inject(method="PUT", path=r"/routeTables/rt1$", status=500)
    net.route_tables.begin_create_or_update(RG, "rt1", RT_BODY).result()
    assert _puts(arm_emulator, "/routeTables/rt1") == [500, 201]


def test_persistent_500_fails_with_the_code(arm_emulator, net):
    arm_emulator.inject(method="PUT", path=r"/routeTables/rt1$", status=500, code="InternalServerError", message="backend down", times=-1)
    with pytest.raises(HttpResponseError) as caught:
        net.route_tables.begin_create_or_update(RG, "rt1", RT_BODY)
    assert caught.value.status_code == 500 and caught.value.error.code == "InternalServerError"
    assert "backend down" in str(caught.value)
    assert _puts(arm_emulator, "/routeTables/rt1") == [500] * 4  # first try + retry_total=3
    assert arm_emulator.faults()[0]["fired"] == 4


def test_injected_409_then_success(arm_emulator, net, route_server):
    arm_emulator.inject(method="PUT", path="/bgpConnections/nva1$", status=409, code="AnotherOperationInProgress", message="busy")
    body = {"properties": {"peerIp": "10.10.2.4", "peerAsn": 65001}}
    with pytest.raises(HttpResponseError) as caught:  # the SDK does not retry 409: the caller must
        net.virtual_hub_bgp_connection.begin_create_or_update(RG, route_server, "nva1", body)
    assert caught.value.error.code == "AnotherOperationInProgress"
    assert net.virtual_hub_bgp_connection.begin_create_or_update(RG, route_server, "nva1", body).result().provisioning_state == "Succeeded"


def test_operation_ending_failed(arm_emulator, net, route_server):
    arm_emulator.inject(method="PUT", path="/bgpConnections/nva1$", lro_final="Failed", code="BgpPeeringFailed", message="peer unreachable")
    poller = net.virtual_hub_bgp_connection.begin_create_or_update(RG, route_server, "nva1", {"properties": {"peerIp": "10.10.2.4", "peerAsn": 65001}})
    with pytest.raises(HttpResponseError) as caught:
        poller.result()
    assert "BgpPeeringFailed" in str(caught.value) and "peer unreachable" in str(caught.value)
    assert net.virtual_hub_bgp_connection.get(RG, route_server, "nva1").provisioning_state == "Failed"
    # the next write is not faulted and repairs it
    net.virtual_hub_bgp_connection.begin_create_or_update(RG, route_server, "nva1", {"properties": {"peerIp": "10.10.2.4", "peerAsn": 65001}}).result()
    assert net.virtual_hub_bgp_connection.get(RG, route_server, "nva1").provisioning_state == "Succeeded"


def test_delete_ending_failed_keeps_the_resource(arm_emulator, net):
    net.route_tables.begin_create_or_update(RG, "rt1", RT_BODY).result()
    arm_emulator.inject(method="DELETE", path="/routeTables/rt1$", lro_final="Failed")
    with pytest.raises(HttpResponseError, match="InternalServerError"):
        net.route_tables.begin_delete(RG, "rt1").result()
    assert net.route_tables.get(RG, "rt1").provisioning_state == "Failed"


def test_routes_listing_ending_failed(arm_emulator, net, route_server):
    net.virtual_hub_bgp_connection.begin_create_or_update(RG, route_server, "nva1", {"properties": {"peerIp": "10.10.2.4", "peerAsn": 65001}}).result()
    arm_emulator.inject(method="POST", path="learnedRoutes$", lro_final="Failed", code="RouteServiceUnavailable")
    with pytest.raises(HttpResponseError, match="RouteServiceUnavailable"):
        net.virtual_hub_bgp_connections.begin_list_learned_routes(RG, route_server, "nva1").result()


def test_slow_answers(arm_emulator, net):
    arm_emulator.inject(method="GET", path="/virtualNetworks/vnet-hub-weu$", delay=1.0, times=2)
    started = time.monotonic()
    assert net.virtual_networks.get(RG, "vnet-hub-weu").name == "vnet-hub-weu"
    assert time.monotonic() - started >= 1.0
    slow = [r for r in arm_emulator.requests() if r["path"].endswith("vnet-hub-weu")]
    assert slow[0]["ms"] >= 1000 and slow[0]["status"] == 200
    # a client with a short read timeout gives up (the SDK retries read timeouts, then fails)
    impatient = arm_emulator.network_client(read_timeout=0.3, retry_total=0)
    with pytest.raises(ServiceResponseError, match="timed out"):
        impatient.virtual_networks.get(RG, "vnet-hub-weu")
    net.virtual_networks.get(RG, "vnet-hub-weu")  # times=2 used up: fast again (the server's own time, not the loaded machine's)
    last = [r for r in arm_emulator.requests() if r["path"].endswith("vnet-hub-weu")][-1]
    assert last["fault"] is False and last["ms"] < 1000


def test_faults_match_method_and_path_only(arm_emulator, net):
    arm_emulator.inject(method="DELETE", path="/routeTables/", status=500, times=-1)
    net.route_tables.begin_create_or_update(RG, "rt1", RT_BODY).result()  # PUT: not matched
    assert net.route_tables.get(RG, "rt1").name == "rt1"
    arm_emulator.clear_faults()
    net.route_tables.begin_delete(RG, "rt1").result()


@pytest.mark.parametrize("fault, field", [
    ({"path": "x", "status": 200}, "status"),
    ({"path": "(", "status": 500}, "path"),
    ({"path": "x", "lro_final": "Succeeded"}, "lro_final"),
    ({"path": "x", "status": 500, "times": 0}, "times"),
    ({"path": "x"}, "needs at least one"),
    ({"path": "x", "status": 500, "colour": "red"}, "colour"),
])
def test_bad_fault_specs_are_refused_naming_the_field(arm_emulator, fault, field):
    with pytest.raises(EmulatorError, match=field):
        arm_emulator.inject(**fault)
    assert arm_emulator.faults() == []


def test_transient_error_while_polling_is_retried(arm_emulator, net):
    arm_emulator.inject(method="GET", path="/operations/", status=503)
    assert net.route_tables.begin_create_or_update(RG, "rt1", RT_BODY).result().provisioning_state == "Succeeded"
    polls = [r["status"] for r in arm_emulator.arm_requests("read") if "/operations/" in r["path"]]
    assert polls[0] == 503 and polls[-1] == 200


def test_token_endpoint_fault(arm_emulator):
    from azure.core.exceptions import ClientAuthenticationError  # pylint: disable=import-outside-toplevel
    arm_emulator.inject(method="POST", path="/oauth2/v2.0/token$", status=400, code="invalid_request", times=-1)
    with pytest.raises(ClientAuthenticationError):
        arm_emulator.credential().get_token("https://management.azure.com/.default")
    arm_emulator.clear_faults()
    assert arm_emulator.credential().get_token("https://management.azure.com/.default").token
