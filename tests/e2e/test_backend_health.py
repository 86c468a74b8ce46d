"""Per-backend health in NAT (issue 14, item 1), end to end in the two-region lab.

westeurope is deployed with a second backend: the region's test VM (in its own namespace) answers like the
application (`westeurope we-testvm`). The healthcheck role probes both backends (`backends`, `backend_checks`,
`min_healthy` 1) and the nat role's backend updater (`nat_backend_health`) sends new flows to the healthy ones only.
While on-premises sends 50 requests/s:

1. the application backend dies: after at most 1 s no request fails, and westeurope stays announced (ECMP on-premises);
2. the test VM's backend dies too: westeurope is withdrawn, as without backend health, and northeurope answers.

The test puts westeurope back as deployed (both backends started, site.yml with the inventory's values).
Figures are printed: run with -s. Marked `long` (two site.yml runs of westeurope): `make e2e` runs it, `make test` not.
"""
import subprocess
import sys
import time

import pytest

from conftest import hold_for, site, wait_for
from anycast_lab.regions import plan
from anycast_lab.regions.traffic import Traffic, summary

WE, NE = plan.REGIONS
ANYCAST = f"{plan.ANYCAST_IP}/32"
RATE = 50
SERVER = ("import http.server, socketserver\n"
          "class H(http.server.BaseHTTPRequestHandler):\n"
          "    def do_GET(self):\n"
          "        body = b'westeurope we-testvm'\n"
          "        self.send_response(200); self.send_header('Content-Length', str(len(body))); self.end_headers()\n"
          "        self.wfile.write(body)\n"
          "    def log_message(self, *args): pass\n"
          "socketserver.ThreadingTCPServer.allow_reuse_address = True\n"
          "socketserver.ThreadingTCPServer(('0.0.0.0', %d), H).serve_forever()\n" % plan.BACKEND_PORT)


def ecmp_onprem():
    out = subprocess.run(["ip", "-n", plan.ONPREM_NS, "route", "show", ANYCAST], capture_output=True, text=True, check=True).stdout
    return out.count("nexthop via") == 2


def two_backends():
    """westeurope's deployment with the test VM as a second backend and per-backend health on."""
    backends = [WE.backend_ip, WE.testvm_ip]
    return {
        "nat_services": [{"name": "app", "anycast_ip": plan.ANYCAST_IP, "protocol": "tcp", "ports": [plan.BACKEND_PORT],
                          "backends": backends}],
        "nat_snat": True,
        "nat_backend_health": True,
        "healthcheck_prefixes": [{"prefix": ANYCAST, "backends": backends, "min_healthy": 1,
                                  "backend_checks": [{"type": "http", "url": "http://{backend}/", "body_match": "westeurope"}]}],
    }


class TestVmBackend:
    """An HTTP server in westeurope's test VM namespace, answering as a backend of the application."""

    def __init__(self):
        self.proc = None

    def start(self):
        # pylint: disable-next=consider-using-with  # stopped by stop()
        self.proc = subprocess.Popen(["ip", "netns", "exec", plan.ns(f"{WE.short}-testvm"), sys.executable, "-c", SERVER])

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture
def we_two_backends(deployed):
    backend = TestVmBackend()
    backend.start()
    try:
        run = site(WE, two_backends())
        assert run.rc == 0, f"site.yml with two backends failed:\n{run.output[-4000:]}"
        wait_for(ecmp_onprem, 60, "westeurope is not announced with two backends")
        yield backend
    finally:
        deployed.topology().service_start(f"{WE.short}-app", "web")
        backend.stop()
        assert site(WE).rc == 0
        wait_for(ecmp_onprem, 60, "westeurope did not come back as deployed")


@pytest.mark.long
def test_one_backend_dies_under_traffic_then_both(deployed, we_two_backends):  # pylint: disable=redefined-outer-name
    topo = deployed.topology()
    flow = Traffic(rate=RATE)
    try:
        time.sleep(3)
        died = time.time()
        topo.service_stop(f"{WE.short}-app", "web")
        # The prefix must stay announced the whole time one backend of two is healthy.
        hold_for(lambda: not ecmp_onprem(), 10, "westeurope was withdrawn with one backend of two healthy")
        both_died = time.time()
        we_two_backends.stop()
        wait_for(lambda: not ecmp_onprem(), 10, "westeurope was not withdrawn with both backends dead")
        time.sleep(5)
    finally:
        records = flow.stop()
    one_down = [record for record in records if died <= record["t"] < both_died]
    failed = [record for record in one_down if not record["ok"]]
    last_failed = max((record["t"] for record in failed), default=died) - died
    print(f"\nbackend health: {len(one_down) / (both_died - died):.0f} requests/s with one of two westeurope backends dead; "
          f"{len(failed)} failed, the last {last_failed:.2f} s after the death; answers {dict(summary(one_down))}", flush=True)
    assert len(one_down) >= 0.8 * RATE * (both_died - died), "the client sent fewer requests than asked"
    assert last_failed <= 1.0, f"requests still failed {last_failed:.2f} s after the backend died: {summary(failed)}"
    assert any(record["ok"] and record["body"] == "westeurope we-testvm" for record in one_down[len(one_down) // 2:]), \
        "westeurope's remaining backend served nothing"
    late = [record for record in records if record["t"] >= both_died + 3]
    assert late and all(record["ok"] and record["body"].startswith("northeurope") for record in late), \
        f"after both westeurope backends died: {summary(late)}"
