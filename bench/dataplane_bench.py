"""Benchmarks of the NVA data plane in the two-region lab (issue 5, benchmarks 2, 3 and 4).

    python bench/dataplane_bench.py --part drain|conntrack|iperf|all   (the venv's Python, the venv on PATH)

drain      failed requests while the on-premises client sends 50 requests/s and drain.yml drains
           westeurope (until traffic moved and the withdraw happened), then undrain.yml; then the same
           for one NVA (we-nva1). Control: the same traffic for 10 s with no drain (the lab's own noise).
conntrack  N (default 60) idle, half-sent HTTP requests through the westeurope NVA the fabric hashes the
           client onto; that NVA fails over (drain.yml by default, --failover stop stops the host); each
           connection then finishes its request: share with the westeurope answer. Control: conntrackd
           stopped on both westeurope NVAs, their kernel tables and conntrackd caches flushed.
iperf      iperf3 from westeurope's test VM to the westeurope backend through the NVA the fabric picks:
           anycast IP with a DNAT rule for 5201 (nat role, extra vars) against the backend's own address
           routed through the same NVA. Alternating runs, median Gbit/s, ratio.

Each part holds the lab lock only while it runs and leaves the lab as it found it.
"""
import argparse
import collections
import contextlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
import traceback

import labbench
from anycast_lab.regions import birdconf, plan, routers, routes
from anycast_lab.regions.fabric import next_hops as fabric_next_hops, path as fabric_path
from anycast_lab.regions.traffic import RouteSwitch, Traffic, settled, summary

WE, NE = plan.REGIONS
ANYCAST = f"{plan.ANYCAST_IP}/32"
ANSWER = {region.short: f"{region.name} {region.short}-app" for region in plan.REGIONS}
IPERF_PORT = 5201
LIBERAL = "net.netfilter.nf_conntrack_tcp_be_liberal"


_HELD = []


@contextlib.contextmanager
def lab_lock():
    """The lab lock, once: --part all takes it for the three parts together (each part alone takes it itself)."""
    if _HELD:
        yield
        return
    with labbench.exclusive_lab():
        _HELD.append(True)
        try:
            yield
        finally:
            _HELD.clear()


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(argv, check=True, timeout=None):
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=timeout)


def wait_for(predicate, timeout, what, interval=0.2):
    """Poll until predicate() is truthy; seconds waited. Raises on timeout (the part's finally restores the lab)."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"after {timeout:.0f} s: {what}")
        time.sleep(interval)
    return time.monotonic() - started


def playbook(name, region, extra_vars=None):
    code, seconds, output = labbench.site(region, extra_vars, name)
    if code:
        raise RuntimeError(f"{name} failed for {region.name} after {seconds:.0f} s:\n{output[-3000:]}")
    return seconds


def hostvar(region, host, name):
    """A variable of a lab NVA as Ansible resolves it: the inventory's value, else the role's default."""
    out = run(["ansible-inventory", "-i", os.path.join(labbench.ROOT, "inventories", "lab", region.name), "--host", host]).stdout
    value = json.loads(out).get(name)
    if value is None:
        import yaml  # pylint: disable=import-outside-toplevel
        with open(os.path.join(labbench.ROOT, "roles", name.split("_", 1)[0], "defaults", "main.yml"), encoding="utf-8") as handle:
            value = yaml.safe_load(handle)[name]
    return value


# -- where the traffic goes --------------------------------------------------------------------------------------

def ecmp_onprem():
    out = run(["ip", "-n", plan.ONPREM_NS, "route", "show", ANYCAST]).stdout
    return out.count("nexthop via") == 2


def onprem_regions():
    """Regions on-premises routes the anycast IP to (by ExpressRoute link)."""
    out = run(["ip", "-n", plan.ONPREM_NS, "route", "show", ANYCAST]).stdout
    return {region.short for region in plan.REGIONS if f"dev er-{region.short}" in out}


def learned_from(region, nva_ip):
    """How many Route Server instances of the region hold the anycast /32 from this NVA (0 = withdrawn)."""
    proto = birdconf.peer_protocol(nva_ip)
    held = 0
    for instance in (0, 1):
        text = routers.birdc(routers.speaker_name(region, instance), "show", "route", "protocol", proto, "all", check=False)
        held += any(route["network"] == ANYCAST for route in routes.parse_routes(text))
    return held


def nva_name(region, address):
    return next(host for host, ip, *_rest in region.nvas if ip == address)


def lab_is_clean():
    """Deployed, nothing drained: ECMP on-premises, both NVAs in both fabrics."""
    return ecmp_onprem() and all(len(fabric_next_hops(region)) == 2 for region in plan.REGIONS)


def start_part(name):
    labbench.ensure_deployed()
    wait_for(lab_is_clean, 90, f"{name}: the lab is not in its deployed state (drained region or NVA?)")


# -- part 2: planned drain ---------------------------------------------------------------------------------------

def drain_one(target, rate, timeout, withdraw_after):
    """Drain (region when target is None) under traffic until moved and withdrawn, undrain, wait until back."""
    what = target or WE.name
    extra = {"anycast_drain_target": target} if target else None
    nva_ips = [ip for host, ip, *_rest in WE.nvas if target in (None, host)]
    other_ips = {ip for host, ip, *_rest in WE.nvas} - set(nva_ips)
    flow = Traffic(rate=rate, timeout=timeout)
    switch = None if target else RouteSwitch()
    figures = {"target": what}
    try:
        time.sleep(2)
        started = time.time()
        figures["drain_playbook_s"] = round(playbook("drain.yml", WE, extra), 1)
        if target:  # the prepend alone moves the region's flows off this NVA (the other path is shorter)
            wait_for(lambda: fabric_next_hops(WE) == other_ips, 30, f"draining {what} did not move the fabric's routes")
        else:  # the prepend is a private ASN that ExpressRoute strips: on-premises moves at the withdraw
            wait_for(lambda: onprem_regions() == {"ne"}, withdraw_after + 30, f"draining {what} did not move on-premises")
        figures["moved_after_s"] = round(time.time() - started, 1)
        wait_for(lambda: all(learned_from(WE, ip) == 0 for ip in nva_ips), withdraw_after + 30, f"{what} was not withdrawn")
        figures["withdrawn_after_s"] = round(time.time() - started, 1)
        log(f"drain {what}: traffic moved after {figures['moved_after_s']} s, withdrawn after {figures['withdrawn_after_s']} s")
        time.sleep(2)
    finally:
        undrained = time.time()
        try:
            playbook("undrain.yml", WE, extra)
            wait_for(lab_is_clean, 60, f"undrain did not bring {what} back")
            figures["back_after_undrain_s"] = round(time.time() - undrained, 1)
            time.sleep(2)
        finally:
            records = flow.stop()
            if switch:
                switch.stop()
    failed = [record for record in records if not record["ok"]]
    # A region drain cannot keep a request open at the instant on-premises moves to the other region (no state
    # crosses regions): those are counted apart; every other failure is a loss the drain should have avoided.
    open_at_switch = switch.open_at_switch(records, timeout) if switch else []
    figures.update(sent=len(records), failed=len(failed), open_at_switch=len(open_at_switch), answers=dict(summary(records)),
                   failed_samples=failed[:10], rate=round(len(records) / (records[-1]["t"] - records[0]["t"]), 1) if len(records) > 1 else 0)
    if not target:
        during = [record for record in records if started <= record["t"] < undrained]
        moved_at = settled(during, ANSWER["ne"])
        figures["all_answers_northeurope_after_s"] = round(moved_at - started, 1) if moved_at else None
    log(f"drain {what}: {figures['sent']} requests at {figures['rate']}/s, {figures['failed']} failed "
        f"({figures['open_at_switch']} open when on-premises switched regions); answers {figures['answers']}")
    return figures


def part_drain(args):
    withdraw_after = float(hostvar(WE, "we-nva1", "healthcheck_drain_withdraw_after"))
    with lab_lock():
        start_part("drain")
        # Control: the same steady traffic, nothing drained (what the lab loses on its own on this machine).
        flow = Traffic(rate=args.rate, timeout=args.request_timeout)
        time.sleep(10)
        baseline = flow.stop()
        base_failed = sum(1 for record in baseline if not record["ok"])
        log(f"no drain (10 s): {len(baseline)} requests, {base_failed} failed; answers {dict(summary(baseline))}")
        # The fabric hashes on addresses only: every flow of the client uses one westeurope NVA. we-nva1 is the
        # NVA the issue names; when the fabric puts the client on the other one, draining that one too is the
        # drain that actually moves live traffic.
        carrying = nva_name(WE, fabric_path(WE))
        drains = [drain_one(None, args.rate, args.request_timeout, withdraw_after)]
        for target in ["we-nva1"] + ([carrying] if carrying != "we-nva1" else []):
            drains.append(drain_one(target, args.rate, args.request_timeout, withdraw_after))
            drains[-1]["carries_client_flows"] = target == carrying
        wait_for(lab_is_clean, 60, "the lab did not come back to its deployed state")
    print("\nplanned drain (on-premises client, %.0f requests/s, %.1f s timeout per request):" % (args.rate, args.request_timeout))
    for item in drains:
        print(f"  drain {item['target']:<11} sent {item['sent']:>5}  failed {item['failed']} ({item['open_at_switch']} open at the switch)  "
              f"(moved after {item['moved_after_s']} s, withdrawn after {item['withdrawn_after_s']} s)"
              f"{'  carries the client' if item.get('carries_client_flows') else ''}")
    print(f"  no drain (control) sent {len(baseline):>5}  failed {base_failed}")
    rows = []
    for item in drains:
        what = f"region {item['target']}" if item["target"] == WE.name else \
            f"NVA {item['target']} ({'carries' if item['carries_client_flows'] else 'does not carry'} the client's flows)"
        at_switch = f", {item['open_at_switch']} of them open when on-premises switched regions" if item["open_at_switch"] else ""
        rows.append(labbench.row(f"failed requests, drain of {what}, {item['sent']} sent at {args.rate:.0f}/s{at_switch}", item["failed"], 0,
                                 lost_by_drain(item) == 0, anchor=base_failed, anchor_name=f"no drain, 10 s ({len(baseline)} sent)", unit="requests"))
    labbench.save("dataplane_drain", rows, drains=drains, baseline={"sent": len(baseline), "failed": base_failed},
                  rate=args.rate, request_timeout=args.request_timeout, withdraw_after=withdraw_after)
    return all(lost_by_drain(item) == 0 for item in drains)


def lost_by_drain(item):
    """Failed requests but those open at the instant on-premises switched regions (no drain can keep those)."""
    return item["failed"] - item["open_at_switch"]


# -- part 3: conntrack sync --------------------------------------------------------------------------------------

# Runs in the on-premises client namespace: opens N connections to the anycast IP, sends half an HTTP request on
# each (the backend waits for the blank line), reports its local ports, waits idle for a line on stdin, then sends
# the blank line on every connection and reports each answer's body (or the error that ended it).
IDLE_CLIENT = r"""
import asyncio, json, sys

async def main(host, port, count, timeout):
    gate = asyncio.Semaphore(8)  # the lab's backend listens with a backlog of 5

    async def open_one():
        async with gate:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
            writer.write(b"GET / HTTP/1.0\r\n")
            await writer.drain()
            return reader, writer

    opened = await asyncio.gather(*(open_one() for _ in range(count)), return_exceptions=True)
    conns = [item for item in opened if not isinstance(item, BaseException)]
    errors = [type(item).__name__ for item in opened if isinstance(item, BaseException)]
    print(json.dumps({"opened": len(conns), "errors": errors,
                      "ports": [writer.get_extra_info("sockname")[1] for _reader, writer in conns]}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

    async def finish(reader, writer):
        try:
            writer.write(b"\r\n")
            await writer.drain()
            data = await asyncio.wait_for(reader.read(), timeout)
            return data.decode(errors="replace").split("\r\n\r\n", 1)[-1].strip() or "empty answer"
        except (OSError, asyncio.TimeoutError) as exc:
            return type(exc).__name__
        finally:
            writer.close()

    answers = await asyncio.gather(*(finish(reader, writer) for reader, writer in conns))
    print(json.dumps({"answers": answers}), flush=True)

asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])))
"""


def nva_exec(topo, name, argv, check=True):
    proc = topo.exec(name, argv, timeout=60)
    if check and proc.returncode:
        raise RuntimeError(f"{name}: {' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc


def client_entries(topo, name, ports):
    """This client's conntrack entries on an NVA for the given source ports: {"<TCP state> snat <address>": count}.

    Each NVA masquerades to its own address, so the address says which NVA set the entry up (a synced copy
    carries the address of the NVA that made it)."""
    out = nva_exec(topo, name, ["conntrack", "-L", "-p", "tcp", "--orig-src", plan.CLIENT_IP, "--orig-dst", plan.ANYCAST_IP], check=False).stdout
    seen = collections.Counter()
    for line in out.splitlines():
        sport = re.search(r"sport=(\d+)", line)
        dsts = re.findall(r"dst=(\S+)", line)
        state = re.search(r"^tcp\s+\d+\s+\d+\s+([A-Z_]+)", line)
        if sport and int(sport.group(1)) in ports and len(dsts) == 2:
            seen[f"{state.group(1) if state else '?'} snat {dsts[1]}"] += 1
    return dict(seen)


def backend_resets():
    """TCP resets the westeurope backend has sent (its namespace's counter)."""
    out = run(["ip", "netns", "exec", plan.ns(f"{WE.short}-app"), "nstat", "-asz", "TcpOutRsts"], check=False).stdout
    match = re.search(r"TcpOutRsts\s+(\d+)", out)
    return int(match.group(1)) if match else None


def failover_run(topo, args, sync):
    """One run: N idle connections through the NVA carrying the client, failover of that NVA, finish them."""
    carrying = fabric_path(WE)
    name = nva_name(WE, carrying)
    other_ip = next(ip for _host, ip, *_rest in WE.nvas if ip != carrying)
    other = nva_name(WE, other_ip)
    label = "with sync" if sync else "without sync"
    client = subprocess.Popen(["ip", "netns", "exec", plan.CLIENT_NS, sys.executable, "-c", IDLE_CLIENT, plan.ANYCAST_IP,
                               str(plan.BACKEND_PORT), str(args.connections), "15"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    figures = {"sync": sync, "carrying": name, "other": other, "failover": args.failover}
    restore = None
    try:
        opened = json.loads(client.stdout.readline())
        ports = set(opened["ports"])
        figures.update(opened=opened["opened"], open_errors=opened["errors"])
        # Every connection went through `name`: it SNATs to its own address, so entries whose reply goes to
        # `carrying` were set up there; a synced copy on the other NVA carries the same address.
        time.sleep(1)  # conntrackd's replication is asynchronous
        figures["entries_carrying"] = client_entries(topo, name, ports)
        figures["entries_other"] = client_entries(topo, other, ports)
        log(f"{label}: {opened['opened']} connections open via {name} ({carrying}); conntrack entries {name} {figures['entries_carrying']}, "
            f"{other} {figures['entries_other']}")
        started = time.monotonic()
        time.sleep(args.idle)
        if args.failover == "drain":
            def restore():
                playbook("undrain.yml", WE, {"anycast_drain_target": name})
            playbook("drain.yml", WE, {"anycast_drain_target": name})
            wait_for(lambda: fabric_path(WE) == other_ip, 30, f"draining {name} did not move the flows to {other_ip}")
        else:
            host = topo.host(name)
            restore = host.boot
            host.stop()
            hold = float(hostvar(WE, name, "bird_hold_time"))
            wait_for(lambda: fabric_next_hops(WE) == {other_ip}, hold + 60, f"the Route Server kept {name}'s route after its stop")
        figures["moved_after_s"] = round(time.monotonic() - started, 1)
        time.sleep(args.idle)  # idle on the new path too
        figures["idle_s"] = round(time.monotonic() - started, 1)
        resets = backend_resets()
        client.stdin.write("go\n")
        client.stdin.flush()
        answers = json.loads(client.stdout.readline())["answers"]
        # Where the answers (or resets) came from: entries on the NVA that took over, resets the backend sent.
        figures["entries_other_after"] = client_entries(topo, other, ports)
        figures["backend_resets"] = (backend_resets() or 0) - (resets or 0)
    finally:
        client.kill()
        client.wait()
        if restore:
            restore()
        wait_for(lambda: fabric_next_hops(WE) == {ip for _h, ip, *_r in WE.nvas}, 180, f"{name} did not come back into the fabric's routes")
    good = sum(1 for answer in answers if answer == ANSWER["we"])
    figures.update(answers=dict(collections.Counter(answers)), survived=good,
                   share=round(100.0 * good / args.connections, 1))
    log(f"{label}: {good} of {args.connections} connections answered after the failover ({figures['share']} %); {figures['answers']}; "
        f"entries on {other} afterwards {figures['entries_other_after']}, backend sent {figures['backend_resets']} resets")
    return figures


def set_sync(topo, on):
    """Off: flush conntrackd's caches, stop it, flush the kernel table on both westeurope NVAs. On: start it again."""
    for name, *_rest in WE.nvas:
        if on:
            nva_exec(topo, name, ["systemctl", "start", "conntrackd.service"])
            # The restarted daemon asks its peer for a resync (StartupResync); ask again once both are up.
            nva_exec(topo, name, ["conntrackd", "-n"], check=False)
        else:
            nva_exec(topo, name, ["conntrackd", "-f"], check=False)
            nva_exec(topo, name, ["systemctl", "stop", "conntrackd.service"])
            nva_exec(topo, name, ["conntrack", "-F"], check=False)
    for name, *_rest in WE.nvas:
        state = nva_exec(topo, name, ["systemctl", "is-active", "conntrackd.service"], check=False).stdout.strip()
        if state != ("active" if on else "inactive"):
            raise RuntimeError(f"{name}: conntrackd is {state}")


def part_conntrack(args):
    withdraw_after = float(hostvar(NE, "ne-nva1", "healthcheck_drain_withdraw_after"))
    with lab_lock():
        start_part("conntrack")
        topo = labbench.lab().topology()
        runs = {}
        deployed_liberal = {name: nva_exec(topo, name, ["sysctl", "-n", LIBERAL]).stdout.strip() for name, *_r in WE.nvas}
        log(f"{LIBERAL} as deployed: {deployed_liberal}")
        try:
            # Every connection must reach westeurope: take northeurope out (drained until its withdraw).
            playbook("drain.yml", NE)
            wait_for(lambda: onprem_regions() == {"we"}, withdraw_after + 30, "northeurope's drain did not end ECMP on-premises")
            log("northeurope drained and withdrawn: on-premises sends everything to westeurope")
            runs["sync"] = failover_run(topo, args, sync=True)
            if args.also_liberal and "0" in deployed_liberal.values():
                # Diagnosis on NVAs deployed without it: the NVA left behind still carries the replies (the backend
                # answers its SNAT address) but never saw the data they acknowledge; window tracking calls them invalid.
                before = deployed_liberal
                try:
                    for name in before:
                        nva_exec(topo, name, ["sysctl", "-qw", f"{LIBERAL}=1"])
                    runs["liberal"] = failover_run(topo, args, sync=True)
                finally:
                    for name, value in before.items():
                        nva_exec(topo, name, ["sysctl", "-qw", f"{LIBERAL}={value}"])
            if not args.skip_control:
                set_sync(topo, False)
                try:
                    runs["nosync"] = failover_run(topo, args, sync=False)
                finally:
                    set_sync(topo, True)
        finally:
            playbook("undrain.yml", NE)
            wait_for(lab_is_clean, 90, "northeurope did not come back after undrain")
    with_sync, without = runs["sync"], runs.get("nosync", {"share": None})
    print(f"\nconntrack sync, {args.connections} idle connections through one westeurope NVA, failover by {args.failover} "
          f"({LIBERAL} as deployed: {deployed_liberal}):")
    for item in [with_sync] + ([without] if "nosync" in runs else []):
        print(f"  {'with sync' if item['sync'] else 'without sync':<13} via {item['carrying']} -> {item['other']}: "
              f"{item['survived']}/{args.connections} answered ({item['share']} %), idle {item['idle_s']} s; answers {item['answers']}")
    rows = [labbench.row(f"connections surviving an NVA failover ({args.failover}), {args.connections} idle, with conntrack sync",
                         with_sync["share"], 100, with_sync["share"] >= 100, anchor=without["share"],
                         anchor_name="conntrackd stopped, tables and caches flushed", unit="%")]
    # The default run (drain) is the benchmark's figure; a host-stop run is kept beside it, not over it.
    if "liberal" in runs:
        item = runs["liberal"]
        print(f"  with sync and {LIBERAL}=1 (not the role's setting): {item['survived']}/{args.connections} answered ({item['share']} %)")
        rows.append(labbench.row(f"the same with sync and {LIBERAL}=1 set by hand on both NVAs (deployed: 0)", item["share"], 100,
                                 item["share"] >= 100, anchor=with_sync["share"], anchor_name="sync as the roles deploy it", unit="%"))
    labbench.save("dataplane_conntrack" if args.failover == "drain" else "dataplane_conntrack_stop", rows, sync=with_sync, nosync=without,
                  liberal=runs.get("liberal"), deployed_tcp_be_liberal=deployed_liberal, connections=args.connections, failover=args.failover)
    return with_sync["share"] >= 100


# -- part 4: iperf3 through the DNAT path against plain routing ------------------------------------------------
#
# Both paths start in westeurope's test VM (10.10.2.10, snet-nva) and end at the westeurope backend (10.11.1.4,
# snet-app, `iperf3 -s` in its namespace), through the same NVA, the one the VNet fabric hashes the test VM's
# flows onto:
#   DNAT:  testvm -> 10.250.0.10:5201 -> fabric (BGP route from Route Server) -> NVA: DNAT to 10.11.1.4 and
#          masquerade -> fabric -> backend; replies to the NVA's address -> NVA un-NATs -> fabric -> testvm.
#   plain: testvm -> 10.11.1.4:5201 -> fabric -> NVA (routes only: no rule of the nat table matches) -> fabric ->
#          backend; replies the same way back through the NVA.
# A route via the NVA inside the test VM would not do it: like Azure, the fabric answers ARP for every address
# and routes by its own tables, so the packet would go straight to the backend. Azure's way is a UDR, but a UDR
# on snet-nva would also catch the NVA's own forwarded packets (a loop): the test VM shares the NVA's subnet. So
# the plain path is a policy rule per NIC port in the fabric (a UDR as if the test VM and the backend sat in
# subnets of their own) for the two addresses only, removed afterwards; the forwarding NIC of the NVA lets the
# fabric hand it packets for other addresses.

TEMP_RULE = "dataplane_bench iperf"
PLAIN_TABLE = 245
PLAIN_PREF = 450  # before the lab's UDR rules (500) and the Route Server tables (1000)


def plain_route_rules(nva_ip, nva_port, add):
    testvm = next(nic for nic in WE.nics if nic.ip == WE.testvm_ip)
    app = next(nic for nic in WE.nics if nic.ip == WE.backend_ip)
    verb = "add" if add else "del"
    lines = [f"route {'replace' if add else 'del'} {WE.backend_ip}/32 via {nva_ip} dev {nva_port} onlink table {PLAIN_TABLE}",
             f"route {'replace' if add else 'del'} {WE.testvm_ip}/32 via {nva_ip} dev {nva_port} onlink table {PLAIN_TABLE}",
             f"rule {verb} pref {PLAIN_PREF} iif {testvm.port} to {WE.backend_ip}/32 lookup {PLAIN_TABLE}",
             f"rule {verb} pref {PLAIN_PREF} iif {app.port} to {WE.testvm_ip}/32 lookup {PLAIN_TABLE}"]
    subprocess.run(["ip", "-n", WE.fabric_ns, "-force", "-batch", "-"], input="\n".join(lines) + "\n", text=True,
                   capture_output=True, check=add)


def nva_rx_bytes(name):
    """Bytes received on the NVA's Azure NIC (eth1), read from its namespace."""
    out = run(["ip", "-n", plan.ns(name), "-s", "-j", "link", "show", "eth1"]).stdout
    return json.loads(out)[0]["stats64"]["rx"]["bytes"]


def iperf_once(target, seconds, nva):
    before = nva_rx_bytes(nva)
    proc = run(["ip", "netns", "exec", plan.ns(f"{WE.short}-testvm"), "iperf3", "-c", target, "-p", str(IPERF_PORT), "-t", str(seconds),
                "-J"], check=False, timeout=seconds + 30)
    through_nva = nva_rx_bytes(nva) - before
    result = json.loads(proc.stdout)
    if "error" in result:
        raise RuntimeError(f"iperf3 to {target}: {result['error']}")
    received = result["end"]["sum_received"]
    return {"gbps": received["bits_per_second"] / 1e9, "bytes": received["bytes"], "nva_rx_bytes": through_nva,
            "retransmits": result["end"]["sum_sent"].get("retransmits")}


def nat_services_with_iperf():
    services = hostvar(WE, "we-nva1", "nat_services")
    return [dict(service, ports=list(service["ports"]) + [IPERF_PORT]) if service["anycast_ip"] == plan.ANYCAST_IP else service
            for service in services]


def part_iperf(args):
    testvm = next(nic for nic in WE.nics if nic.ip == WE.testvm_ip)
    with lab_lock():
        start_part("iperf")
        nva_ip = fabric_path(WE, source=WE.testvm_ip, iif=testvm.port)
        nva = nva_name(WE, nva_ip)
        nva_port = next(nic.port for nic in WE.nics if nic.ip == nva_ip)
        server = None
        runs = {"dnat": [], "plain": []}
        topo = labbench.lab().topology()
        rule_by = None
        try:
            # The DNAT rule for 5201 comes from the nat role itself (nva.yml, the service's ports plus 5201). When the
            # role cannot run (it fails before touching a host), a temporary rule in the role's table stands in.
            try:
                log(f"nva.yml westeurope with a DNAT rule for {IPERF_PORT}: "
                    f"{playbook('nva.yml', WE, {'nat_services': nat_services_with_iperf()}):.0f} s")
                rule_by = "role"
            except RuntimeError as exc:
                log(f"nva.yml failed, a temporary rule in the nat role's table on {nva} instead: {str(exc)[-600:]}")
                nva_exec(topo, nva, ["nft", "add", "rule", "ip", "anycast_nat", "prerouting", "ip", "daddr", plan.ANYCAST_IP, "tcp", "dport",
                                     str(IPERF_PORT), "dnat", "to", WE.backend_ip, "comment", f'"{TEMP_RULE}"'])
                rule_by = "temporary nft rule"
            plain_route_rules(nva_ip, nva_port, add=True)
            server = subprocess.Popen(["ip", "netns", "exec", plan.ns(f"{WE.short}-app"), "iperf3", "-s", "-p", str(IPERF_PORT)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)
            for index in range(args.runs):
                order = ("dnat", "plain") if index % 2 == 0 else ("plain", "dnat")
                for path in order:
                    target = plan.ANYCAST_IP if path == "dnat" else WE.backend_ip
                    result = iperf_once(target, args.seconds, nva)
                    runs[path].append(result)
                    log(f"run {index + 1} {path:<5} {result['gbps']:.2f} Gbit/s ({result['bytes'] / 1e6:.0f} MB received, "
                        f"{result['nva_rx_bytes'] / 1e6:.0f} MB into {nva}, {result['retransmits']} retransmits)")
                    if result["nva_rx_bytes"] < 0.9 * result["bytes"]:
                        raise RuntimeError(f"{path}: the traffic did not go through {nva}")
        finally:
            if server:
                server.kill()
                server.wait()
            plain_route_rules(nva_ip, nva_port, add=False)
            if rule_by == "role":
                log(f"nva.yml westeurope as deployed again: {playbook('nva.yml', WE):.0f} s")
            else:
                listing = nva_exec(topo, nva, ["nft", "-a", "list", "chain", "ip", "anycast_nat", "prerouting"]).stdout
                for handle in re.findall(rf'comment "{TEMP_RULE}" # handle (\d+)', listing):
                    nva_exec(topo, nva, ["nft", "delete", "rule", "ip", "anycast_nat", "prerouting", "handle", handle])
            for name, *_rest in WE.nvas:
                rules = nva_exec(topo, name, ["nft", "list", "table", "ip", "anycast_nat"]).stdout
                if f"{IPERF_PORT}" in rules:
                    raise RuntimeError(f"{name}: the DNAT rule for {IPERF_PORT} is still there")
    dnat = statistics.median(item["gbps"] for item in runs["dnat"])
    plain = statistics.median(item["gbps"] for item in runs["plain"])
    ratio = dnat / plain
    print(f"\niperf3 westeurope test VM -> backend through {nva}, {args.runs} x {args.seconds} s per path, alternating, median:")
    print(f"  DNAT path (anycast IP:{IPERF_PORT})   {dnat:.2f} Gbit/s   runs {[round(item['gbps'], 2) for item in runs['dnat']]}")
    print(f"  plain routing (backend address)  {plain:.2f} Gbit/s   runs {[round(item['gbps'], 2) for item in runs['plain']]}")
    print(f"  ratio DNAT/plain {ratio:.3f} (target >= 0.9); DNAT rule for {IPERF_PORT} by {rule_by}")
    rows = [labbench.row(f"iperf3 throughput through {nva}'s DNAT path (median of {args.runs} x {args.seconds} s)", round(dnat, 2),
                         anchor=round(plain, 2), anchor_name="plain routing through the same NVA", unit="Gbit/s"),
            labbench.row("throughput ratio DNAT / plain routing", round(ratio, 3), 0.9, ratio >= 0.9,
                         anchor=1.0, anchor_name="plain routing through the same NVA", unit="ratio")]
    labbench.save("dataplane_iperf", rows, nva=nva, runs=runs, dnat_gbps=dnat, plain_gbps=plain, ratio=ratio,
                  seconds=args.seconds, dnat_rule=rule_by)
    return ratio >= 0.9


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["drain", "conntrack", "iperf", "all"], default="all")
    parser.add_argument("--rate", type=float, default=50.0, help="drain: requests per second (default %(default)s)")
    parser.add_argument("--request-timeout", type=float, default=1.0, help="drain: seconds per request (default %(default)s)")
    parser.add_argument("--connections", type=int, default=60, help="conntrack: idle connections (default %(default)s, at least 50)")
    parser.add_argument("--idle", type=float, default=5.0, help="conntrack: idle seconds before and after the failover (default %(default)s)")
    parser.add_argument("--failover", choices=["drain", "stop"], default="drain",
                        help="conntrack: drain the carrying NVA (default) or stop its host (waits for the BGP hold time)")
    parser.add_argument("--skip-control", action="store_true", help="conntrack: only the run with sync (no control run)")
    parser.add_argument("--also-liberal", action="store_true",
                        help=f"conntrack: one more run with sync and {LIBERAL}=1 on both NVAs (restored afterwards)")
    parser.add_argument("--runs", type=int, default=5, help="iperf: runs per path (default %(default)s)")
    parser.add_argument("--seconds", type=int, default=5, help="iperf: seconds per run (default %(default)s)")
    args = parser.parse_args()
    # Traffic.stop() ends the client with SIGINT: a shell that starts us in the background ignores SIGINT, and an
    # ignored signal stays ignored in every child. Take it back so the clients we start can be interrupted.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if args.connections < 50:
        parser.error("--connections: at least 50")
    parts = {"drain": part_drain, "conntrack": part_conntrack, "iperf": part_iperf}
    met = True
    log("waiting for the lab lock")
    with lab_lock():
        for name in (parts if args.part == "all" else [args.part]):
            log(f"part {name}")
            try:
                met = parts[name](args) and met
            except Exception:  # pylint: disable=broad-except  # one part failing must not skip the others
                traceback.print_exc()
                met = False
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
