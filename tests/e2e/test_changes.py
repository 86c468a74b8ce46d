"""Day-2 changes under traffic (issue 11): every change an operator makes to a region, made while on-premises sends
25 requests/s and a watcher polls on-premises' routes every 20 ms.

Pass, for every case: no failed request, and no existing prefix loses a next hop on-premises (both regions keep
announcing it) while the change rolls through westeurope one NVA at a time. Each case puts the inventory back with
an ordinary rerun, which is a change under traffic too and is held to the same bar. Figures are printed: run with -s.
"""
import json
import os
import re
import subprocess
import sys
import threading
import time

import pytest

from conftest import onprem_route, site, wait_for
from anycast_lab.paths import LAB_DIR
from anycast_lab.regions import plan
from anycast_lab.regions.traffic import Traffic, summary

WE, NE = plan.REGIONS
SERVICE = f"{plan.ANYCAST_IP}/32"           # the lab's service, announced by both regions
ADDED = "10.250.0.20"                        # a second service the cases add (same backend as the first)
UNDEPLOYED = "10.250.0.21"                   # a service whose backend does not exist yet
SECOND_BACKEND = WE.testvm_ip                # a second backend in westeurope (an HTTP server on the test VM)
APP_CHECK = {"type": "http", "url": f"http://{WE.backend_ip}/", "body_match": WE.name}


def inventory(prefixes=(), checks=None, backends=None, nat=None):
    """Extra vars that give westeurope more services than its inventory: [(address, backend, port, check)]."""
    services = [{"name": "app", "anycast_ip": plan.ANYCAST_IP, "protocol": "tcp", "ports": [80],
                 "backends": backends or [WE.backend_ip]}]
    health = [{"prefix": SERVICE, "checks": checks or [APP_CHECK]}]
    for index, (address, backend, port, check) in enumerate(prefixes):
        services.append({"name": f"svc{index}", "anycast_ip": address, "protocol": "tcp", "ports": [80],
                         "backends": [backend], "backend_port": port})
        health.append({"prefix": f"{address}/32", "checks": [check]})
    return {"anycast_prefixes": [SERVICE] + [f"{address}/32" for address, *_rest in prefixes],
            "nat_services": nat if nat is not None else services, "healthcheck_prefixes": health}


class RouteWatch:
    """Polls on-premises' routing table every 20 ms and records every moment a watched prefix had fewer next hops
    than when the watch began (a region stopped announcing it)."""

    def __init__(self, prefixes, poll=0.02):
        self.prefixes = list(prefixes)
        self.poll = poll
        self.initial = self._hops()
        self.losses = []
        self.polls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _hops(self):
        out = subprocess.run(["ip", "-n", plan.ONPREM_NS, "route", "show"], capture_output=True, text=True, check=True).stdout
        routes, current = {}, None
        for line in out.splitlines():
            if not line.startswith((" ", "\t")):
                current = line.split()[0]
                current = current if "/" in current else current + "/32"
                routes[current] = set(re.findall(r"via (\S+)", line))
            elif current:
                routes[current] |= set(re.findall(r"via (\S+)", line))
        return {prefix: routes.get(prefix, set()) for prefix in self.prefixes}

    def _watch(self):
        while not self._stop.is_set():
            hops = self._hops()
            self.polls += 1
            for prefix in self.prefixes:
                if not hops[prefix] >= self.initial[prefix]:
                    self.losses.append((time.time(), prefix, sorted(hops[prefix])))
            time.sleep(self.poll)

    def stop(self):
        self._stop.set()
        self._thread.join(5)
        return self.losses


class UnderTraffic:
    """Traffic to the lab's service and a route watch on the given prefixes, for the span of a `with` block."""

    def __init__(self, name, watch=(SERVICE,)):
        self.name = name
        self.watch = watch
        self.records = []
        self.losses = []

    def __enter__(self):
        wait_for(lambda: all(len(onprem_route(prefix)) == 2 for prefix in self.watch), 60,
                 f"{self.name}: before the change, on-premises does not learn {self.watch} from both regions")
        self.watcher = RouteWatch(self.watch)  # pylint: disable=attribute-defined-outside-init
        self.flow = Traffic(rate=25, timeout=1.0)  # pylint: disable=attribute-defined-outside-init
        self.started = time.monotonic()  # pylint: disable=attribute-defined-outside-init
        return self

    def __exit__(self, *exc):
        time.sleep(2)  # requests sent right after the change count too
        self.records = self.flow.stop()
        self.losses = self.watcher.stop()
        failed = [record for record in self.records if not record["ok"]]
        print(f"\n{self.name}: {time.monotonic() - self.started:.0f} s, {len(self.records)} requests, {len(failed)} failed; "
              f"{self.watcher.polls} route polls, {len(self.losses)} with a lost next hop", flush=True)
        if exc[0] is None:
            assert len(self.records) >= 20 * (time.monotonic() - self.started - 5), f"{self.name}: the client sent too few requests"
            assert not failed, f"{self.name}: failed requests {summary(failed)}: {failed[:5]}"
            assert not self.losses, f"{self.name}: on-premises lost a next hop: {self.losses[:5]}"
        return False


def rolled(run, what):
    """The rolling run succeeded."""
    assert run.rc == 0, f"{what}: site.yml failed:\n{run.output[-4000:]}"
    return run


def drains(run):
    """Number of NVAs the rolling run drained (their drain task reported changed)."""
    return len(re.findall(r"Rolling \| De-prefer this NVA's prefixes[^\n]*\n+changed: \[", run.output))


def nva_status(lab, host):
    out = lab.topology().host(host).ssh(["anycast-healthcheck", "status"])
    return json.loads(out.stdout)["status"]


def we_hosts():
    return [host for host, *_rest in WE.nvas]


@pytest.fixture
def second_backend(lab):  # pylint: disable=unused-argument
    """An HTTP server on westeurope's test VM, answering like the application: a backend the cases add and remove."""
    proc = subprocess.Popen(["ip", "netns", "exec", plan.ns(f"{WE.short}-testvm"), sys.executable, "-m", "anycast_lab.hosts.httpd",
                             "--bind", SECOND_BACKEND, "--port", "80", "--body", f"{WE.name} {WE.short}-testvm"],
                            env=dict(os.environ, PYTHONPATH=LAB_DIR), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    yield SECOND_BACKEND
    proc.terminate()
    proc.wait(10)


@pytest.fixture(autouse=True)
def all_nvas_serve(deployed):
    """Every case starts with every NVA of both regions announcing the service, and must leave it so."""
    def serving():
        return len(onprem_route(SERVICE)) == 2 and all(nva_status(deployed, host)[SERVICE]["exported"] for host in we_hosts())
    wait_for(serving, 60, "before the case: not every NVA announces the service")
    yield
    wait_for(serving, 60, "after the case: it left an NVA or a region withdrawn")


def test_add_prefixes_change_checks_then_remove_them(deployed):  # pylint: disable=unused-argument
    """a. a prefix with its check and backend; b. a prefix whose backend is not deployed; d. checks changed (with g's
    prepend, a filter change); c. both prefixes removed (and the prepend with them)."""
    added = (ADDED, WE.backend_ip, 80, APP_CHECK)
    undeployed = (UNDEPLOYED, WE.backend_ip, 8080, {"type": "tcp", "host": WE.backend_ip, "port": 8080})
    with UnderTraffic("add a prefix with its backend and one whose backend is not deployed"):
        rolled(site(WE, inventory([added, undeployed])), "add")
        wait_for(lambda: len(onprem_route(f"{ADDED}/32")) == 1, 30, f"{ADDED} (healthy backend) did not reach on-premises")
    assert onprem_route(f"{UNDEPLOYED}/32") == [], f"{UNDEPLOYED} has no backend yet and must not be announced"
    for host in we_hosts():
        state = nva_status(deployed, host)
        assert state[f"{UNDEPLOYED}/32"]["exported"] is False and state[f"{ADDED}/32"]["exported"] is True, state

    changed_check = dict(APP_CHECK, body_match=f"{WE.short}-app")
    with UnderTraffic("change the service's checks and the AS-path prepend (g)", watch=(SERVICE,)):
        run = rolled(site(WE, dict(inventory([added, undeployed], checks=[changed_check, {"type": "tcp", "host": WE.backend_ip, "port": 80}]),
                                   bird_prepend_count=1)), "change checks and prepend")
        assert drains(run) == 0, "new checks (checker SIGHUP) and a prepend (a BIRD filter change) must not drain an NVA"
    for host in we_hosts():
        assert nva_status(deployed, host)[SERVICE]["bird_value"] == 1, "a checks change must keep the service announced"

    with UnderTraffic("remove both added prefixes"):
        rolled(site(WE), "remove")
        wait_for(lambda: onprem_route(f"{ADDED}/32") == [], 30, f"{ADDED} stayed on-premises after its removal")


# A client that keeps one HTTP/1.1 connection busy (a request every 0.3 s) until SIGTERM, then prints what it saw.
LIVE_CONNECTION = """
import json, signal, socket, sys, time
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
sock = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
print("connected", flush=True)
answers, error = [], None
while not stop and error is None:
    try:
        sock.sendall(b"GET / HTTP/1.1\\r\\nHost: anycast\\r\\n\\r\\n")
        head = b""
        while b"\\r\\n\\r\\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed by the other end")
            head += chunk
        head, body = head.split(b"\\r\\n\\r\\n", 1)
        length = int([line.split(b":")[1] for line in head.split(b"\\r\\n") if line.lower().startswith(b"content-length")][0])
        while len(body) < length:
            body += sock.recv(4096)
        answers.append(body.decode().strip())
    except (OSError, ValueError, IndexError) as exc:
        error = repr(exc)
    time.sleep(0.3)
print(json.dumps({"answers": len(answers), "backends": sorted(set(answers)), "error": error}), flush=True)
"""


def test_add_and_remove_a_backend_keeps_established_connections(deployed, second_backend):
    """e. a backend added then removed while 10 connections are busy: each stays on the backend it started on."""
    clients = [subprocess.Popen(["ip", "netns", "exec", plan.CLIENT_NS, sys.executable, "-c", LIVE_CONNECTION, plan.ANYCAST_IP,
                                 str(plan.BACKEND_PORT)], stdout=subprocess.PIPE, text=True) for _index in range(10)]
    try:
        assert [client.stdout.readline().strip() for client in clients] == ["connected"] * len(clients)
        with UnderTraffic("add a backend"):
            run = rolled(site(WE, inventory(backends=[WE.backend_ip, second_backend])), "add a backend")
            assert drains(run) == 0, "a backend change is applied in place: a drain would move flows between NVAs that disagree"
    finally:
        with UnderTraffic("remove the added backend"):
            rolled(site(WE), "remove the backend")
        for client in clients:
            client.terminate()
        seen = [json.loads(client.communicate(timeout=30)[0]) for client in clients]
    print(f"\n10 busy connections: {[item['answers'] for item in seen]} answers each", flush=True)
    broken = [item for item in seen if item["error"] or len(item["backends"]) != 1]
    assert not broken, f"connections broke or changed backend while a backend was added and removed: {broken}"
    assert all(item["answers"] > 100 for item in seen), seen


def test_new_checker_code_and_bgp_timers_roll_through_the_region_one_drained_nva_at_a_time(deployed):
    """f. new checker code (the checker restarts) and g. BGP timers (BIRD resets the sessions to apply them): each NVA
    is drained before its change and back in service before the next one's; then the timers go back."""
    for host in we_hosts():  # what a new release looks like to the role: the installed code differs
        deployed.topology().host(host).ssh(["sh", "-c", "echo '# older release' >> /usr/local/lib/anycast-healthcheck/anycast_healthcheck/__init__.py"])
    try:
        with UnderTraffic("roll new checker code and BGP timers out"):
            run = rolled(site(WE, {"bird_keepalive_time": 20, "bird_hold_time": 60}), "checker code and timers")
            assert drains(run) == 2, f"each NVA must be drained before its checker restarts and its sessions reset:\n{run.output[-3000:]}"
            assert run.output.index("Rolling | Undrain this NVA") < run.output.rindex("Rolling | De-prefer this NVA's prefixes"), \
                "the second NVA was drained before the first was back in service"
    finally:
        with UnderTraffic("timers back as the inventory has them"):
            assert drains(rolled(site(WE), "restore")) == 2


def test_nftables_reload_and_conntrackd_restart(deployed):
    """h. `systemctl reload nftables` and a conntrackd restart on one NVA, outside any playbook."""
    host = deployed.topology().host(we_hosts()[0])
    with UnderTraffic("nftables start and reload, conntrackd restart on one NVA"):
        # Debian ships nftables.service inactive, and a reload of an inactive unit does nothing: start it first
        # (a start loads the distribution's ruleset and ours in one transaction too).
        for action in ("start", "reload", "reload"):
            assert host.ssh(["systemctl", action, "nftables"]).returncode == 0, action
            time.sleep(2)
        host.ssh(["systemctl", "restart", "conntrackd"])
        time.sleep(3)
    tables = host.ssh(["nft", "list", "tables"]).stdout
    assert "ip anycast_nat" in tables and "inet anycast_conntrack_sync" in tables, f"a table is missing after the reload:\n{tables}"


def test_manual_edit_of_the_live_state_is_repaired(deployed):
    """i. the live state file edited by hand (everything withdrawn, BIRD told): the checker repairs it within 2 s."""
    host = deployed.topology().host(we_hosts()[0])
    with UnderTraffic("manual edit of the live state on one NVA"):
        edited = time.monotonic()
        host.ssh(["sh", "-c", "cp /etc/anycast-nva/announce.withdrawn.conf /run/anycast-nva/announce.conf && birdc configure"])
        wait_for(lambda: nva_status(deployed, we_hosts()[0])[SERVICE]["exported"], 10, "the checker did not repair the live state")
        repaired = time.monotonic() - edited
        print(f"\nlive state repaired {repaired:.2f} s after the edit", flush=True)
        assert repaired <= 3.0, f"repair took {repaired:.2f} s (bound: 2 s reconcile interval)"
        run = site(WE)
        assert run.rc == 0 and run.changed() == 0, f"the rerun after the repair changed something: {run.recap}"
    status = site(WE, name="status.yml")
    assert status.rc == 0, status.output[-3000:]
    for host in we_hosts():  # the status table shows what BIRD exports: "NVA  BGP UP  PREFIX  BIRD EXPORTS  CHECKER"
        assert re.search(rf"{host}\s+2/2\s+{re.escape(SERVICE)}\s+announced\s+announced", status.output), status.output[-3000:]


@pytest.mark.parametrize("bad, named", [
    ({"anycast_prefixes": [SERVICE, f"{ADDED}/32"]}, f"{ADDED}/32"),
    ({"healthcheck_prefixes": [{"prefix": SERVICE, "checks": [APP_CHECK]}, {"prefix": f"{ADDED}/32", "checks": [APP_CHECK]}]}, f"{ADDED}/32"),
    ({"nat_services": [{"name": "app", "anycast_ip": plan.ANYCAST_IP, "protocol": "tcp", "ports": [80], "backends": [WE.backend_ip]},
                       {"name": "x", "anycast_ip": ADDED, "protocol": "tcp", "ports": [80], "backends": [WE.backend_ip]}]}, ADDED),
])
def test_inconsistent_inventory_stops_before_any_change(deployed, bad, named):
    """j. BIRD, the checker and NAT disagree: the run stops at its first play, naming the prefix, with nothing changed."""
    arm = deployed.arm()
    arm.clear_requests()
    run = site(WE, bad)
    assert run.rc != 0, "an inconsistent inventory did not stop the run"
    assert named in run.output and "Consistency" in run.output, run.output[-3000:]
    assert run.changed() == 0 and arm.writes() == 0, f"changes before the run stopped: {run.recap} {arm.arm_requests('write')}"
