"""Azure's bad days: throttling, busy hubs, failed operations, an unhealthy ARM."""
import datetime
import time

from anycast_lab.playbook_runner import HUB, NICS, RG

ROUTES = [{"name": "onprem", "address_prefix": "172.16.0.0/16", "next_hop_type": "VirtualAppliance", "next_hop_ip_address": "10.10.2.4"}]


def seconds_since_first_request(lab):
    """How long ago the module sent its first request (token or ARM): its own run time, without
    ansible-playbook's start-up, which a loaded machine stretches."""
    first = min(datetime.datetime.fromisoformat(r["time"]) for r in lab.requests())
    return (datetime.datetime.now(datetime.timezone.utc) - first).total_seconds()


def statuses(lab, fragment):
    return [r["status"] for r in lab.arm_requests("write") if fragment in r["path"]]


def test_429_then_success(run_module, lab, network):
    lab.inject(method="PUT", path="/routeTables/rt-spoke$", status=429, retry_after=1, times=2)
    result = run_module("route_table", dict(name="rt-spoke", resource_group=RG, location="westeurope", routes=ROUTES))
    assert result["failed"] is False and result["changed"] is True, result
    assert statuses(lab, "/routeTables/rt-spoke") == [429, 429, 201]
    assert [r.name for r in network.route_tables.get(RG, "rt-spoke").routes] == ["onprem"]


def test_409_another_operation_in_progress_then_success(run_module, lab, network):
    lab.inject(method="PUT", path="/bgpConnections/nva1$", status=409, code="AnotherOperationInProgress",
               message="Another operation on this or dependent resource is in progress.", times=2)
    result = run_module("route_server_peer", dict(route_server=HUB, resource_group=RG, name="nva1", peer_ip="10.10.2.4", peer_asn=65001))
    assert result["failed"] is False and result["changed"] is True, result
    assert statuses(lab, "/bgpConnections/nva1") == [409, 409, 201]
    assert network.virtual_hub_bgp_connection.get(RG, HUB, "nva1").peer_asn == 65001


def test_an_operation_ending_failed_gives_azure_code_and_message(run_module, lab):
    lab.inject(method="PUT", path="/networkInterfaces/", lro_final="Failed", code="NetworkInterfaceUpdateFailed",
               message="The NIC could not be updated: the VM host is being serviced.")
    result = run_module("nic_ip_forwarding", dict(resource_group=RG, nics=[NICS[0]]))
    assert result["failed"] is True, result
    assert result["msg"] == "nics: NetworkInterfaceUpdateFailed: The NIC could not be updated: the VM host is being serviced."
    assert result["error"]["code"] == "NetworkInterfaceUpdateFailed"


def test_persistent_500s_fail_clearly_within_the_timeout(run_module, lab):
    lab.inject(method="PUT", path="/routeTables/", status=500, code="InternalServerError", message="ARM is having a bad day.", times=-1)
    result = run_module("route_table", dict(name="rt-spoke", resource_group=RG, location="westeurope", routes=ROUTES), timeout=12)
    elapsed = seconds_since_first_request(lab)
    assert result["failed"] is True, result
    assert result["msg"].startswith("timeout: InternalServerError: Azure did not accept the write to RouteTables rg-anycast-weu/rt-spoke: "), result["msg"]
    assert result["msg"].endswith("(timeout=12s); its last answer: 500 InternalServerError: ARM is having a bad day."), result["msg"]
    assert result["error"]["status"] == 500
    attempts = statuses(lab, "/routeTables/")
    assert len(attempts) > 1 and set(attempts) == {500}  # the SDK retried ...
    assert elapsed < 12 + 4, elapsed  # ... but gave up within the module's timeout (+ ansible-playbook finishing up)
    print("persistent 500s: %d attempts, failed after %.1f s (timeout=12)" % (len(attempts), elapsed))


def test_a_peer_left_failed_is_repaired_by_the_next_run(run_module, lab, network):
    args = dict(route_server=HUB, resource_group=RG, name="nva1", peer_ip="10.10.2.4", peer_asn=65001)
    lab.inject(method="PUT", path="/bgpConnections/nva1$", lro_final="Failed", code="BgpConnectionProvisioningFailed",
               message="The BGP connection could not be provisioned.")
    failed = run_module("route_server_peer", args)
    assert failed["failed"] is True and failed["msg"] == "name: BgpConnectionProvisioningFailed: The BGP connection could not be provisioned."
    assert network.virtual_hub_bgp_connection.get(RG, HUB, "nva1").provisioning_state == "Failed"

    repaired = run_module("route_server_peer", args)
    assert repaired["failed"] is False and repaired["changed"] is True and repaired["writes"] == 1, repaired
    assert repaired["peer"]["provisioning_state"] == "Succeeded"
    assert run_module("route_server_peer", args)["writes"] == 0


def test_an_answer_that_never_comes_fails_within_the_timeout(run_module, lab):
    lab.inject(method="GET", path="/networkInterfaces/", delay=60, times=-1)
    result = run_module("nic_ip_forwarding", dict(resource_group=RG, nics=[NICS[0]]), timeout=8)
    elapsed = seconds_since_first_request(lab)
    assert result["failed"] is True and result["writes"] == 0, result
    assert result["msg"].startswith("timeout: "), result["msg"]
    assert elapsed < 8 + 4, elapsed  # the module's timeout (+ ansible-playbook finishing up)
    print("slow answers: failed after %.1f s (timeout=8): %s" % (elapsed, result["msg"]))


def test_a_429_storm_is_waited_out_honouring_retry_after(run_module, lab, network):
    # 10 throttled answers in a row (azure-core alone gives up after 3): half say Retry-After: 2, half x-ms-retry-after-ms: 1500.
    lab.inject(method="PUT", path="/routeTables/rt-spoke$", status=429, retry_after=2, times=5)
    lab.inject(method="PUT", path="/routeTables/rt-spoke$", status=429, retry_after_ms=1500, times=5)
    result = run_module("route_table", dict(name="rt-spoke", resource_group=RG, location="westeurope", routes=ROUTES), timeout=120)
    elapsed = seconds_since_first_request(lab)
    assert result["failed"] is False and result["changed"] is True, result
    puts = [r for r in lab.arm_requests("write") if r["path"].endswith("/routeTables/rt-spoke")]
    assert [r["status"] for r in puts] == [429] * 10 + [201]
    times = [datetime.datetime.fromisoformat(r["time"]) for r in puts]
    gaps = [(later - earlier).total_seconds() for earlier, later in zip(times, times[1:])]
    assert min(gaps[:5]) >= 2 and min(gaps[5:]) >= 1.5, gaps  # every pause Azure asked for was kept
    assert [r.name for r in network.route_tables.get(RG, "rt-spoke").routes] == ["onprem"]
    print("429 storm: %d throttled answers, then 201; pauses %s s; module run %.1f s (timeout=120)"
          % (len(puts) - 1, " ".join("%.1f" % gap for gap in gaps), elapsed))


def test_a_write_still_running_at_the_deadline_says_azure_accepted_it(run_module, lab):
    lab.settings(op_seconds=60)
    result = run_module("nic_ip_forwarding", dict(resource_group=RG, nics=[NICS[0]]), timeout=8)
    assert result["failed"] is True and result["writes"] == 1, result
    assert result["msg"] == ("timeout: Azure accepted the write to NetworkInterfaces rg-anycast-weu/%s, but it did not finish within "
                             "timeout=8s; it may still complete (rerun the task to see)" % NICS[0]), result["msg"]


def test_a_token_endpoint_that_does_not_answer_fails_within_the_timeout(run_module, lab):
    lab.inject(method="POST", path="/oauth2/v2.0/token$", delay=90, times=-1)
    started = time.monotonic()
    result = run_module("nic_ip_forwarding", dict(resource_group=RG, nics=[NICS[0]]), timeout=10)
    elapsed = time.monotonic() - started  # the token request is logged only when answered: timed here, with ansible-playbook's start
    assert result["failed"] is True and result["writes"] == 0, result
    assert result["msg"].startswith("timeout: no token from the identity endpoint (auth_source credentials, authority https://127.0.0.1:"), result["msg"]
    assert elapsed < 10 + 15, elapsed
    print("token endpoint answering after 90 s: the task failed after %.1f s, ansible-playbook included (timeout=10)" % elapsed)
