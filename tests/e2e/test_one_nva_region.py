"""A region of one NVA beside a region of two (issue 19), under on-premises traffic.

westeurope has we-nva1 alone, northeurope its two NVAs: the lab comes up at that size (LAB_SIZE), both regions are
deployed with site.yml from the inventories the lab writes for it, then: state sync left out of the one-NVA region
(said once), a rerun that changes nothing and writes nothing to ARM, ECMP across the regions, the application of the
one-NVA region failing, a drain of that region (its only NVA), a rolling change of it into no-SNAT mode, and its death.

The module brings the lab up at its size itself: the session's default lab is taken down first, and brought up again
(not deployed) afterwards; conftest runs this module after the tests of the default lab. To keep it short, westeurope's
drains withdraw after 10 s (healthcheck_drain_withdraw_after, an extra var of every westeurope run). The BGP timers stay
Route Server's (keepalive 60 s, hold 180 s): the lab's Route Server speakers would take a shorter hold time from the NVA
and still send their keepalives every 45-60 s (BIRD), so the sessions would drop. Figures are printed: run with -s.
"""
import concurrent.futures
import re
import subprocess
import time

import pytest

from conftest import hostvar, site, wait_for
from anycast_lab.inventory import inventory_path
from anycast_lab.lab import Lab
from anycast_lab.regions import plan
from anycast_lab.regions.fabric import next_hops as fabric_next_hops
from anycast_lab.regions.traffic import RouteSwitch, Traffic, requests, settled, summary

LAB_SIZE = {"westeurope": 1, "northeurope": 2}  # conftest runs a module with a LAB_SIZE after the default-size tests
WE, NE = plan.regions(LAB_SIZE)
NVA, NVA_IP = WE.nvas[0][0], WE.nvas[0][1]
WE_VARS = {"healthcheck_drain_withdraw_after": 10}
ANYCAST = f"{plan.ANYCAST_IP}/32"
ANSWER = {region.short: f"{region.name} {region.short}-app" for region in plan.REGIONS}
CHECKER_INIT = "/usr/local/lib/anycast-healthcheck/anycast_healthcheck/__init__.py"  # what a new release changes
NO_SYNC = f"{NVA} is the only NVA of the region: conntrack_sync (state sync between the NVAs of a region) is not configured"


def run(region, name=None, extra_vars=None):
    """A playbook of the collection (site.yml unless `name`) for a region of this lab, from the lab's inventory for it."""
    wanted = dict(WE_VARS if region.name == WE.name else {}, **(extra_vars or {}))
    return site(region, wanted or None, name, inventory_path(region))


def both():
    """site.yml for both regions at once (the regions share nothing): {region name: run}."""
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        futures = {region.name: pool.submit(run, region) for region in (WE, NE)}
        return {key: future.result() for key, future in futures.items()}


def changed_tasks(ran):
    """The tasks that changed something in a run (their names)."""
    return sorted(set(re.findall(r"TASK \[([^\]]+)\][^\n]*\n+changed: ", ran.output)))


def ecmp_onprem():
    out = subprocess.run(["ip", "-n", plan.ONPREM_NS, "route", "show", ANYCAST], capture_output=True, text=True, check=True).stdout
    return out.count("nexthop via") == 2


def serving():
    """On-premises routes the anycast IP to both regions; westeurope's VNet to its one NVA, northeurope's to its two."""
    return ecmp_onprem() and fabric_next_hops(WE) == {NVA_IP} and len(fabric_next_hops(NE)) == 2


@pytest.fixture(scope="module")
def one_nva_lab(lab):
    """The lab at LAB_SIZE, both regions deployed with site.yml: (lab handle, {region name: the deploying run}).
    Afterwards the lab is brought up at the default size again, as the session had it (not deployed)."""
    started = time.monotonic()
    lab.down()
    handle = Lab(lab.base, nvas=LAB_SIZE)
    try:
        handle.up()
        print(f"\nlab down and up at {plan.described(LAB_SIZE)} in {time.monotonic() - started:.0f} s", flush=True)
        started = time.monotonic()
        runs = both()
        for name, deployed in runs.items():
            assert deployed.rc == 0, f"site.yml failed for {name}:\n{deployed.output[-4000:]}"
        print(f"site.yml, both regions at once: {time.monotonic() - started:.0f} s, "
              f"changed westeurope={runs['westeurope'].changed()} northeurope={runs['northeurope'].changed()}", flush=True)
        wait_for(serving, 60, "on-premises did not learn the anycast IP from both regions")
        yield handle, runs
    finally:
        started = time.monotonic()
        handle.down()
        lab.up()
        print(f"\nthe default lab back up in {time.monotonic() - started:.0f} s", flush=True)


@pytest.fixture(autouse=True)
def both_regions_serve(one_nva_lab):  # pylint: disable=redefined-outer-name
    """Every scenario starts with both regions announcing and must leave them so."""
    wait_for(serving, 60, "before the test: not every NVA of both regions announces the anycast IP")
    yield
    wait_for(serving, 120, "after the test: it left westeurope's NVA or a region withdrawn")


def test_state_sync_is_not_configured_in_the_one_nva_region_and_the_run_says_so_once(one_nva_lab):  # pylint: disable=redefined-outer-name
    handle, runs = one_nva_lab
    assert runs["westeurope"].output.count(NO_SYNC) == 1, runs["westeurope"].output[-3000:]
    assert "is the only NVA of the region" not in runs["northeurope"].output
    topo = handle.topology()
    alone = topo.host(NVA)
    assert "inet anycast_conntrack_sync" not in alone.ssh(["nft", "list", "tables"]).stdout
    assert alone.ssh(["systemctl", "is-active", "conntrackd", "anycast-sync-relay"]).stdout.split() == ["inactive", "inactive"]
    for host, *_rest in NE.nvas:  # the region of two syncs as before
        assert topo.host(host).ssh(["systemctl", "is-active", "conntrackd", "anycast-sync-relay"]).stdout.split() == ["active", "active"]


def test_rerun_of_the_one_nva_region_changes_nothing_and_writes_nothing_to_arm(one_nva_lab):  # pylint: disable=redefined-outer-name
    """(The region of two: test_anycast.py.)"""
    arm = one_nva_lab[0].arm()
    arm.clear_requests()
    rerun = run(WE)
    writes = arm.arm_requests("write")
    print(f"\nrerun of westeurope (1 NVA): changed={rerun.changed()}, {len(writes)} ARM writes", flush=True)
    assert rerun.rc == 0, rerun.output[-3000:]
    assert rerun.changed() == 0, f"the second run changed something: {rerun.recap} {changed_tasks(rerun)}"
    assert not writes, f"the second run wrote to ARM: {writes}"
    assert rerun.output.count(NO_SYNC) == 1


def test_ecmp_serves_onpremises_from_both_regions(one_nva_lab):  # pylint: disable=redefined-outer-name,unused-argument
    assert ecmp_onprem() and fabric_next_hops(WE) == {NVA_IP}
    answers = requests(60)
    assert answers["failed"] == 0, answers
    assert answers[ANSWER["we"]] > 0 and answers[ANSWER["ne"]] > 0, f"not spread over both regions: {answers}"


def test_application_failure_in_the_one_nva_region_moves_traffic_and_back(one_nva_lab):  # pylint: disable=redefined-outer-name
    after, moved = one_nva_lab[0].application_failover(WE, seconds=15, rate=25)
    failed = sum(1 for record in after if not record["ok"])
    print(f"\napplication failure in westeurope (1 NVA): {len(after) / 15:.0f} requests/s, traffic on northeurope only after "
          f"{moved if moved is not None else float('nan'):.2f} s, {failed} failed requests of {len(after)}", flush=True)
    assert len(after) >= 20 * 15, "the client sent fewer than 20 requests/s"
    assert moved is not None and moved < 10, f"traffic did not move to northeurope: {summary(after)}"
    wait_for(ecmp_onprem, 30, "westeurope's announcement did not come back with its application")
    answers = requests(60)
    assert answers["failed"] == 0 and answers[ANSWER["we"]] > 0, answers


def test_drain_of_the_one_nva_region_loses_only_what_is_open_at_the_switch(one_nva_lab):  # pylint: disable=redefined-outer-name,unused-argument
    """Draining the region's only NVA withdraws the region: on-premises moves to northeurope. The pass criteria of the
    region drain of the default lab (test_anycast.py): no failed request but those open at the instant on-premises
    switched regions, at most two of them."""
    timeout = 1.0
    flow = Traffic(rate=25, timeout=timeout)
    switch = RouteSwitch()
    try:
        drained = run(WE, "drain.yml")
        assert drained.rc == 0, drained.output[-3000:]
        wait_for(lambda: not ecmp_onprem(), WE_VARS["healthcheck_drain_withdraw_after"] + 30, "the drain of westeurope did not move the traffic")
        status = run(WE, "status.yml")  # while drained: BIRD exports nothing, the checker says drained
        time.sleep(2)
    finally:
        undrained = run(WE, "undrain.yml")
        records = flow.stop()
        switch.stop()
    assert undrained.rc == 0, undrained.output[-3000:]
    assert status.rc == 0 and re.search(rf"{NVA}\s+2/2\s+{re.escape(ANYCAST)}\s+withdrawn\s+\S+ \(drained\)", status.output), \
        status.output[-3000:]
    failed = [record for record in records if not record["ok"]]
    in_flight = switch.open_at_switch(failed, timeout)
    print(f"\ndrain westeurope (1 NVA): {len(records)} requests, {len(failed)} failed; on-premises switched regions within "
          f"{switch.changed - switch.before:.3f} s; {len(in_flight)} request(s) open at that instant failed", flush=True)
    assert switch.changed is not None, "on-premises never switched regions"
    assert len(in_flight) <= 2, f"the drain of westeurope lost more than the requests open at the switch: {summary(failed)}"
    failed = [record for record in failed if record not in in_flight]
    assert not failed, f"the drain of westeurope lost requests: {summary(failed)}"
    wait_for(ecmp_onprem, 60, "undrain did not bring westeurope back")


def test_rolling_change_of_the_one_nva_withdraws_the_region_and_no_snat_returns_through_it(one_nva_lab):  # pylint: disable=redefined-outer-name
    """New checker code (a change that drains the NVA first) and no-SNAT mode in one run: the rolling run drains the
    region's only NVA, so the region is withdrawn while it changes and northeurope takes the traffic (nothing refuses
    it, nothing waits for another NVA of the region), with the region drain's pass criteria. Then the UDR table sends
    on-premises' return traffic to that NVA, and on-premises is answered from westeurope through it. westeurope stays
    in no-SNAT mode for the test after this one (the NVA's death is the same in either mode)."""
    handle = one_nva_lab[0]
    network = handle.arm().network_client()
    handle.topology().host(NVA).ssh(["sh", "-c", f"echo '# an older release' >> {CHECKER_INIT}"])
    timeout = 1.0
    flow = Traffic(rate=25, timeout=timeout)
    switch = RouteSwitch()
    try:
        changed = run(WE, extra_vars={"anycast_nat_mode": "no-snat"})
        time.sleep(2)
    finally:
        records = flow.stop()
        switch.stop()
    assert changed.rc == 0, changed.output[-3000:]
    WE_VARS["anycast_nat_mode"] = "no-snat"  # what westeurope's inventory is now, for any later run
    drained = len(re.findall(r"Rolling \| De-prefer this NVA's prefixes[^\n]*\n+changed: \[", changed.output))
    assert drained == 1, f"the rolling run did not drain {NVA} before restarting its checker:\n{changed.output[-3000:]}"
    failed = [record for record in records if not record["ok"]]
    in_flight = switch.open_at_switch(failed, timeout)
    print(f"\nrolling change of westeurope's only NVA: {len(records)} requests, {len(failed)} failed, {len(in_flight)} of them "
          f"open when on-premises switched regions; changed={changed.changed()}", flush=True)
    assert switch.changed is not None, "the region was not withdrawn while its only NVA changed"
    assert len(in_flight) <= 2, f"the rolling change lost more than the requests open at the switch: {summary(failed)}"
    assert not [record for record in failed if record not in in_flight], f"the rolling change lost requests: {summary(failed)}"
    assert {record["body"] for record in records if record["ok"]} == set(ANSWER.values()), summary(records)

    table = network.route_tables.get(WE.resource_group, "rt-anycast-return-we")
    assert [(route.address_prefix, route.next_hop_type, route.next_hop_ip_address) for route in table.routes] == \
        [(plan.ONPREM_PREFIX, "VirtualAppliance", NVA_IP)], table.routes
    subnet = network.subnets.get(WE.resource_group, WE.spoke_vnet, "snet-app")
    assert subnet.route_table is not None and subnet.route_table.id.lower() == table.id.lower()
    wait_for(ecmp_onprem, 60, "westeurope did not come back after the rolling change")
    answers = requests(60)
    assert answers["failed"] == 0 and answers[ANSWER["we"]] > 0, answers


def fabric_silences(port, silent):
    """Drop everything to and from a NIC port in westeurope's fabric, as Azure does for a VM that died: no BGP
    notification, no reset reaches Route Server, whose sessions end at the hold time."""
    table = f"inet anl_e2e_dead_{port.replace('-', '_')}"
    script = (f"table {table} {{\n"
              f"  chain pre {{ type filter hook prerouting priority -300; iifname \"{port}\" drop; }}\n"
              f"  chain post {{ type filter hook postrouting priority -300; oifname \"{port}\" drop; }}\n}}\n"
              if silent else f"delete table {table}\n")
    subprocess.run(["ip", "netns", "exec", WE.fabric_ns, "nft", "-f", "-"], input=script, text=True, check=silent)


@pytest.mark.long  # waits up to Route Server's 180 s hold time: make e2e, not make test
def test_death_of_the_one_nva_moves_traffic_to_the_other_region_within_the_hold_time(one_nva_lab):  # pylint: disable=redefined-outer-name
    hold = hostvar(WE, NVA, "bird_hold_time")
    port = next(nic.port for nic in WE.nics if nic.ip == NVA_IP)
    host = one_nva_lab[0].topology().host(NVA)
    flow = Traffic(rate=25)
    switch = RouteSwitch()
    try:
        time.sleep(2)
        died = time.time()
        fabric_silences(port, True)
        host.stop()
        wait_for(lambda: switch.changed is not None, hold + 30, "on-premises still routes to westeurope after the hold time")
        time.sleep(5)
    finally:
        records = flow.stop()
        switch.stop()
        fabric_silences(port, False)
        host.boot()
    after = [record for record in records if record["t"] >= died]
    moved = settled(after, ANSWER["ne"])
    failed = [record for record in after if not record["ok"]]
    print(f"\ndeath of {NVA} (the only NVA of westeurope): on-premises moved to northeurope {switch.changed - died:.1f} s after, "
          f"every answer from northeurope {moved - died if moved else float('nan'):.1f} s after; {len(failed)} failed requests "
          f"of {len(after)} (hold time {hold} s)", flush=True)
    assert moved is not None and moved - died <= hold + 2, f"traffic was not on northeurope within the hold time: {summary(after)}"
    late = [record for record in after if record["t"] >= switch.changed + 1]
    assert len(late) >= 20 * 3 and all(record["ok"] and record["body"] == ANSWER["ne"] for record in late), \
        f"failures or westeurope answers once on-premises had moved: {summary(late)}"
