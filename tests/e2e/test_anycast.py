"""The README's scenario end to end (issue 4, tests 1, 2, 3, 5, 7, 8, 9): site.yml per region, then on-premises traffic.

Skipped until the site playbook exists (ANYCAST_SITE_PLAYBOOK points at another one meanwhile). Every test
puts the lab back as `deployed` left it. Figures (failover time, failed requests) are printed: run with -s.
"""
import subprocess
import sys
import time

import pytest

from conftest import hold_for, hostvar, onprem_route, site, wait_for
from anycast_lab.regions import plan
from anycast_lab.regions.fabric import next_hops as fabric_next_hops, path as fabric_path
from anycast_lab.regions.traffic import RouteSwitch, Traffic, requests, summary

WE, NE = plan.REGIONS
ANYCAST = f"{plan.ANYCAST_IP}/32"
PUBLIC_ASN = 3356  # any public ASN: it survives the ExpressRoute edge
ANSWER = {region.short: f"{region.name} {region.short}-app" for region in plan.REGIONS}


def ecmp_onprem():
    out = subprocess.run(["ip", "-n", plan.ONPREM_NS, "route", "show", ANYCAST], capture_output=True, text=True, check=True).stdout
    return out.count("nexthop via") == 2


def announcing_everywhere():
    """Both NVAs of both regions announce: each VNet routes the anycast IP to both, on-premises to both regions."""
    return ecmp_onprem() and all(len(fabric_next_hops(region)) == 2 for region in plan.REGIONS)


@pytest.fixture(autouse=True)
def as_deployed(deployed):  # pylint: disable=unused-argument
    """Every scenario starts from the deployed lab and must leave it so: a test that leaves an NVA withdrawn
    fails here, not the next test with losses nobody can explain."""
    wait_for(announcing_everywhere, 60, "before the test: not every NVA of both regions announces the anycast IP")
    yield
    wait_for(announcing_everywhere, 60, "after the test: it left an NVA or a region withdrawn")


def test_idempotent_rerun_changes_nothing_and_writes_nothing_to_arm(deployed):
    arm = deployed.arm()
    for region in plan.REGIONS:
        arm.clear_requests()
        run = site(region)
        assert run.rc == 0, run.output[-3000:]
        assert run.changed() == 0, f"second run of {region.name} changed something: {run.recap}"
        assert arm.writes() == 0, f"second run of {region.name} wrote to ARM: {arm.arm_requests('write')}"


def test_ecmp_serves_onpremises_from_both_regions(deployed):  # pylint: disable=unused-argument
    assert ecmp_onprem()
    answers = requests(60)
    assert answers["failed"] == 0, answers
    assert answers[ANSWER["we"]] > 0 and answers[ANSWER["ne"]] > 0, f"not spread over both regions: {answers}"


def test_guard_rails_stop_the_run_before_any_change(deployed):
    arm = deployed.arm()
    for bad, why in (({"anycast_prefixes": ["10.10.9.9/32"]}, "anycast prefix inside the hub VNet"),
                     ({"anycast_prefixes": ["172.16.5.5/32"]}, "anycast prefix inside on-premises"),
                     ({"anycast_nva_asn": 65515}, "ASN reserved by Azure (Route Server's own)")):
        arm.clear_requests()
        run = site(WE, bad)
        assert run.rc != 0, f"{why}: the run did not fail"
        assert arm.writes() == 0, f"{why}: ARM writes before the run stopped: {arm.arm_requests('write')}"
        assert run.changed() == 0, f"{why}: hosts changed before the run stopped: {run.recap}"


def test_public_prepend_prefers_the_other_region_private_prepend_is_stripped(deployed):  # pylint: disable=unused-argument
    try:
        run = site(NE, {"bird_prepend_count": 2, "bird_prepend_asn": PUBLIC_ASN})
        assert run.rc == 0, run.output[-3000:]
        wait_for(lambda: not ecmp_onprem(), 30, "a public-ASN prepend in northeurope did not end ECMP on-premises")
        assert [route["as_path"] for route in onprem_route(ANYCAST)][0] == ["12076"]
        assert requests(40) == {ANSWER["we"]: 40}

        run = site(NE, {"bird_prepend_count": 2, "bird_prepend_asn": plan.NVA_ASN})
        assert run.rc == 0, run.output[-3000:]
        assert "WARNING" in run.output and "private" in run.output.lower(), "no warning that a private-ASN prepend is stripped"
        wait_for(ecmp_onprem, 30, "a private-ASN prepend changed the on-premises choice (it must be stripped at the edge)")
        answers = requests(60)
        assert answers["failed"] == 0 and answers[ANSWER["we"]] > 0 and answers[ANSWER["ne"]] > 0, answers
    finally:
        assert site(NE).rc == 0
        wait_for(ecmp_onprem, 30, "ECMP did not come back after the prepend was removed")


def test_health_failover_moves_traffic_and_back(deployed):
    after, moved = deployed.application_failover(WE, seconds=15, rate=25)
    failed = sum(1 for record in after if not record["ok"])
    print(f"\nhealth failover: {len(after) / 15:.0f} requests/s, traffic on northeurope only after "
          f"{moved if moved is not None else float('nan'):.2f} s, {failed} failed requests of {len(after)}", flush=True)
    assert len(after) >= 20 * 15, "the client sent fewer than 20 requests/s"
    assert moved is not None and moved < 10, f"traffic did not move to northeurope: {summary(after)}"
    wait_for(ecmp_onprem, 30, "westeurope's announcement did not come back with its application")
    answers = requests(60)
    assert answers["failed"] == 0 and answers[ANSWER["we"]] > 0, answers


def test_nva_death_keeps_the_service_up_within_the_hold_time(deployed):
    # Stop the NVA that carries the client's flows now (the fabric hashes flows onto one NVA of the two).
    carrying = fabric_path(WE)
    name = next(host for host, address, *_rest in WE.nvas if address == carrying)
    hold = hostvar(WE, name, "bird_hold_time")
    host = deployed.topology().host(name)
    flow = Traffic(rate=25)
    try:
        time.sleep(2)
        stopped = time.time()
        host.stop()
        time.sleep(hold + 10)
    finally:
        records = flow.stop()
        host.boot()
    late = [record for record in records if record["t"] >= stopped + hold + 2]
    failed = [record for record in records if record["t"] >= stopped and not record["ok"]]
    print(f"\nNVA death ({name}): {len(failed)} failed requests; hold time {hold} s", flush=True)
    assert late and all(record["ok"] for record in late), f"failures after the hold time: {summary(late)}"
    wait_for(lambda: len(fabric_next_hops(WE)) == 2, 120, f"{name} did not come back into the VNet's routes after its reboot")


def test_no_snat_return_traffic_needs_the_udr(deployed, azure):
    try:
        run = site(WE, {"anycast_nat_mode": "no-snat"})
        assert run.rc == 0, run.output[-3000:]
        subnet = azure.client.subnets.get(WE.resource_group, WE.spoke_vnet, "snet-app")
        assert subnet.route_table is not None, "no-SNAT mode did not associate a route table with the application subnet"
        answers = requests(60)
        assert answers["failed"] == 0 and answers[ANSWER["we"]] > 0, answers
        # Negative control: without the UDR the backend answers on-premises directly and the client drops it.
        azure.set_subnet_route_table(WE, WE.spoke_vnet, "snet-app", None)
        hold_for(lambda: requests(20)["failed"] == 0, 3, "no-SNAT traffic to westeurope still works without the UDR")
        answers = requests(60)
        assert answers[ANSWER["we"]] == 0 and answers["failed"] > 0, answers
    finally:
        azure.cleanup()
        assert site(WE).rc == 0


def playbook(name, region, extra_vars=None):
    """Run another playbook of the collection for a lab region (drain, undrain, status)."""
    return site(region, extra_vars, name)


def test_drain_a_region_then_one_nva_loses_no_request(deployed):  # pylint: disable=unused-argument
    withdraw_after = hostvar(WE, "we-nva1", "healthcheck_drain_withdraw_after")
    timeout = 1.0  # a request answered within 1 s is not lost (a lost SYN costs the 1 s retransmission and still counts)
    # The NVA drained is the one carrying the client's flows (the fabric hashes them onto one of the two).
    carrying = fabric_path(WE)
    nva = next(host for host, address, *_rest in WE.nvas if address == carrying)
    other = next(address for _host, address, *_rest in WE.nvas if address != carrying)
    for target, settled_when in ((None, lambda: not ecmp_onprem()), (nva, lambda: fabric_next_hops(WE) == {other})):
        flow = Traffic(rate=25, timeout=timeout)
        switch = RouteSwitch() if target is None else None
        try:
            run = playbook("drain.yml", WE, {"anycast_drain_target": target} if target else None)
            assert run.rc == 0, run.output[-3000:]
            wait_for(settled_when, withdraw_after + 30, f"drain of {target or WE.name} did not move the traffic")
            time.sleep(2)
        finally:
            run = playbook("undrain.yml", WE, {"anycast_drain_target": target} if target else None)
            records = flow.stop()
            if switch:
                switch.stop()
        assert run.rc == 0, run.output[-3000:]
        failed = [record for record in records if not record["ok"]]
        print(f"\ndrain {target or WE.name}: {len(records)} requests, {len(failed)} failed", flush=True)
        if switch:
            # The one loss no drain can avoid: a connection open at the instant on-premises moves to the other region,
            # whose NVAs and backend never saw it (no state crosses regions). Only a request started within its
            # timeout before that instant can be one; more than two at 25 requests/s would not be that.
            in_flight = switch.open_at_switch(failed, timeout)
            print(f"drain {WE.name}: on-premises switched regions within {switch.changed - switch.before:.3f} s; "
                  f"{len(in_flight)} request(s) open at that instant failed", flush=True)
            assert len(in_flight) <= 2, f"drain of {WE.name} lost more than the requests open at the switch: {summary(failed)}"
            failed = [record for record in failed if record not in in_flight]
        assert not failed, f"drain of {target or WE.name} lost requests: {summary(failed)}"
        wait_for(lambda: ecmp_onprem() and len(fabric_next_hops(WE)) == 2, 60, "undrain did not bring the NVA/region back")


# A client that opens its connection and sends half a request, then waits for a line on stdin before finishing it.
HALF_REQUEST = """
import socket, sys
sock = socket.socket()
sock.settimeout(20)
sock.connect((sys.argv[1], int(sys.argv[2])))
sock.sendall(b"GET / HTTP/1.0\\r\\n")
print("connected", flush=True)
sys.stdin.readline()
sock.sendall(b"\\r\\n")
data = b""
while True:
    chunk = sock.recv(4096)
    if not chunk:
        break
    data += chunk
print(data.decode(errors="replace").split("\\r\\n\\r\\n", 1)[-1].strip(), flush=True)
"""


def test_conntrack_sync_keeps_an_established_connection_when_its_path_moves(deployed):  # pylint: disable=unused-argument
    # Which region a connection reaches is up to on-premises ECMP: open several; those that reach westeurope
    # all go through the same NVA (the fabric hashes on addresses), the one this test then drains.
    first = fabric_path(WE)
    name = next(host for host, address, *_rest in WE.nvas if address == first)
    other = next(address for _host, address, *_rest in WE.nvas if address != first)
    clients = [subprocess.Popen(["ip", "netns", "exec", plan.CLIENT_NS, sys.executable, "-c", HALF_REQUEST, plan.ANYCAST_IP, str(plan.BACKEND_PORT)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _index in range(12)]
    try:
        assert [client.stdout.readline().strip() for client in clients] == ["connected"] * len(clients)
        run = playbook("drain.yml", WE, {"anycast_drain_target": name})
        assert run.rc == 0, run.output[-3000:]
        wait_for(lambda: fabric_path(WE) == other, 30, f"draining {name} did not move the flows to {other}")
        answers = [client.communicate("go\n", timeout=30)[0].strip() for client in clients]
    finally:
        for client in clients:
            client.kill()
        assert playbook("undrain.yml", WE, {"anycast_drain_target": name}).rc == 0
    # A connection that reached northeurope never moved; an empty answer is a connection that broke (reset).
    assert set(answers) <= set(ANSWER.values()), f"connections opened through {first} broke when their path moved to {other}: {answers}"
    assert ANSWER["we"] in answers, f"no connection reached westeurope, nothing was tested: {answers}"
