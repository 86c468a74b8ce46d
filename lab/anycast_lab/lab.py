"""The two-region lab: ARM emulator, topology (NVA hosts, fabric, speakers, edge, on-premises), wiring, sync.

`python -m anycast_lab up|down|status|demo|inventory`. Everything lives under the lab dir ($ANYCAST_LAB_DIR,
default <repo>/.cache/lab): the emulator's state and CA (arm/), the generated topology spec (lab.yml)
and seed (seed.json), BIRD configs (bird/), the host machinery's state (hosts/, run/, logs/, ssh/),
the lab's size (size.json: NVAs per region) and the inventories generated for a size other than 2 (inventories/).
"""
import json
import os
import shlex
import shutil
import subprocess
import sys
import time

from .arm.client import EmulatorProcess
from .hosts.topology import Topology, teardown
from .hosts.util import LabError, log, running_pid, start_background, stop_background
from .inventory import default_dir as inventory_dir, inventory_path
from .paths import LAB_DIR, REPO, lab_dir
from .regions import convergence, labspec, plan, routers, routes, sync, traffic, wiring

__all__ = ["Lab", "demo", "inventory_path", "site_playbook"]

ARM_PORT = 8443
# Sessions that must be up before the lab is usable: every Route Server instance with the edge, the edge with on-premises.
CORE_SESSIONS = [(routers.speaker_name(reg, i), "er") for reg in plan.REGIONS for i in (0, 1)] + \
                [("onprem", f"er_{reg.short}") for reg in plan.REGIONS]


class Lab:
    """Paths and handles of one lab dir.

    `nvas`: the size `up` brings the lab up with: NVAs per region (1-8), the same for both ('2', 2) or one per region
    ('westeurope=1,northeurope=2', or a dict); None = $ANYCAST_LAB_NVAS, else 2.
    `convergence_delay`: seconds the edge holds what it tells on-premises (regions/convergence.py); None keeps the
    lab's current delay (0 on a fresh lab).
    """

    def __init__(self, base=None, nvas=None, convergence_delay=None):
        self.base = base or lab_dir()
        self.nvas = nvas
        self.convergence_delay = convergence_delay
        self.arm_dir = os.path.join(self.base, "arm")
        self.state_file = os.path.join(self.arm_dir, "state.json")
        self.pid_file = os.path.join(self.arm_dir, "emulator.pid")
        self.ca_bundle = os.path.join(self.arm_dir, "tls", "ca.pem")
        self.endpoint = f"https://127.0.0.1:{ARM_PORT}"
        self.spec_file = os.path.join(self.base, "lab.yml")

    def topology(self):
        return Topology.from_state(self.base)

    # -- ARM emulator -------------------------------------------------------------------------------------------

    def _hook(self, command):
        """A shell command line the emulator runs: this Python, this lab dir."""
        env = f"PYTHONPATH={shlex.quote(LAB_DIR)} ANYCAST_LAB_DIR={shlex.quote(self.base)}"
        return f"{env} {shlex.quote(sys.executable)} -m anycast_lab.regions {command}"

    def start_emulator(self):
        if running_pid(self.pid_file):
            return False
        ready = os.path.join(self.arm_dir, "tls", "ready")
        if os.path.exists(ready):
            os.unlink(ready)
        argv = [sys.executable, "-m", "anycast_lab.arm", "serve", "--port", str(ARM_PORT), "--state", self.state_file,
                "--log", os.path.join(self.arm_dir, "requests.log"), "--tls-dir", os.path.join(self.arm_dir, "tls"),
                "--on-change-cmd", self._hook("sync"), "--routes-cmd", self._hook("routes"), "--peer-state-cmd", self._hook("peer-state")]
        start_background(argv, self.pid_file, os.path.join(self.base, "logs", "arm-emulator.log"), env=dict(os.environ, PYTHONPATH=LAB_DIR))
        deadline = time.monotonic() + 20
        while not os.path.exists(ready):
            if not running_pid(self.pid_file) or time.monotonic() > deadline:
                raise LabError(f"the ARM emulator did not start; see {os.path.join(self.base, 'logs', 'arm-emulator.log')}")
            time.sleep(0.05)
        return True

    def arm(self):
        """The emulator's client (admin API, SDK client, credentials, environment) for the lab's running emulator."""
        emu = EmulatorProcess(self.arm_dir)
        emu.endpoint, emu.port = self.endpoint, ARM_PORT
        emu.tenant_id, emu.subscription_id = plan.TENANT_ID, plan.SUBSCRIPTION_ID
        emu.client_id, emu.client_secret = plan.CLIENT_ID, plan.CLIENT_SECRET
        return emu

    def seeded(self):
        with open(self.state_file, encoding="utf-8") as handle:
            return bool(json.load(handle).get("resources"))

    def size(self):
        """{region name: NVAs} of the lab that is up, or None when it is down (recorded by `up`, removed by `down`)."""
        recorded = plan.recorded_nvas(self.base)
        if recorded is None and (running_pid(self.pid_file) or (os.path.exists(self.state_file) and self.seeded())):
            return plan.parse_sizes(plan.DEFAULT_NVAS)  # up from before the size was recorded: it had 2
        return recorded

    def _claim_size(self):
        """The size to bring up: the one asked for; refused when the lab is up with another."""
        wanted = plan.requested_nvas(self.nvas)
        running = self.size()
        if running is not None and running != wanted:
            raise LabError(f"the lab in {self.base} is up with {plan.described(running)}, not {plan.described(wanted)}: take it down first "
                           f"(`python -m anycast_lab down`, holding the lab lock if others use it), "
                           f"or bring it up with --nvas {plan.spelled(running)}")
        plan.record_nvas(wanted, self.base)
        return wanted

    # -- up / down ------------------------------------------------------------------------------------------------

    def up(self):
        """Bring the whole lab up (idempotent); returns {step: seconds}."""
        timings = {}
        started = time.monotonic()
        os.makedirs(self.arm_dir, exist_ok=True)
        nvas = self._claim_size()

        step = time.monotonic()
        log("ARM emulator: " + ("started" if self.start_emulator() else "already running") + f" on {self.endpoint}")
        if not self.seeded():
            self.arm().seed(labspec.seed(nvas))
            log(f"ARM emulator: seeded both regions (resource groups, VNets, NICs of {plan.described(nvas)}, Route Servers)")
        timings["emulator"] = time.monotonic() - step

        step = time.monotonic()
        if self.convergence_delay is not None:
            convergence.write_delay(self.base, self.convergence_delay)
        labspec.write(self.base, nvas)
        sync.apply(self.state_file, self.base, fabric_too=False)
        log("topology: namespaces, segments, NVA hosts and services")
        Topology.from_file(self.spec_file, self.base).up()
        timings["topology"] = time.monotonic() - step

        step = time.monotonic()
        wiring.apply(nvas)
        convergence.install_redirect(self.base)
        sync.apply(self.state_file, self.base, force=True)
        self.wait_sessions(CORE_SESSIONS, timeout=60)
        timings["bgp"] = time.monotonic() - step
        timings["total"] = time.monotonic() - started
        log("lab up in {total:.1f} s (emulator {emulator:.1f} s, topology {topology:.1f} s, BGP core {bgp:.1f} s)".format(**timings))
        paths = [os.path.relpath(inventory_path(region, self.base)) for region in plan.REGIONS]
        log(f"ARM endpoint {self.endpoint}, CA bundle {self.ca_bundle}; {plan.described(nvas)}, inventories: {', '.join(paths)}")
        return timings

    def wait_sessions(self, sessions, timeout):
        deadline = time.monotonic() + timeout
        while True:
            missing = [f"{router}/{proto}" for router, proto in sessions if not routes.established(router, proto)]
            if not missing:
                return
            if time.monotonic() > deadline:
                raise LabError(f"BGP sessions not established after {timeout} s: {', '.join(missing)}")
            time.sleep(0.25)

    def down(self):
        started = time.monotonic()
        if os.path.exists(os.path.join(self.base, "topology.json")):
            self.topology().down()
        else:
            teardown(plan.PREFIX, self.base, labspec.MGMT_BRIDGE)
        stop_background(self.pid_file)
        # The next `up` starts from a fresh Azure (no peers, forwarding off, branch-to-branch off) and fresh configs.
        # Kept: the emulator's CA (tls/), the SSH key and the logs.
        for path in (self.state_file, os.path.join(self.arm_dir, "requests.log"), self.spec_file, os.path.join(self.base, "seed.json"),
                     os.path.join(self.base, "sync.lock"), plan.size_file(self.base),
                     convergence.delay_file(self.base)):
            if os.path.exists(path):
                os.unlink(path)
        for path in (os.path.join(self.base, "bird"), os.path.join(self.base, "fabric"), inventory_dir(self.base)):
            shutil.rmtree(path, ignore_errors=True)
        log(f"lab down in {time.monotonic() - started:.1f} s")

    # -- looking at it ------------------------------------------------------------------------------------------

    def status(self):
        print(f"ARM emulator: {'running' if running_pid(self.pid_file) else 'stopped'} ({self.endpoint}, state {self.state_file})")
        size = self.size()
        print(f"size: {plan.described(size)}" if size else "size: none recorded (down)")
        print(f"convergence delay: {convergence.read_delay(convergence.delay_file(self.base)):g} s (edge to on-premises)")
        if not os.path.exists(os.path.join(self.base, "topology.json")):
            print("topology: down")
            return
        topo = self.topology()
        for node in topo.status()["nodes"]:
            extra = "" if node["kind"] != "host" else (" running" if node.get("running") else " stopped")
            services = " ".join(f"{name}:{'up' if up else 'down'}" for name, up in node["services"].items())
            print(f"  {node['name']:<12} {node['kind']:<6}{extra} {services}")
        print("BGP sessions:")
        for name in routers.names():
            print(f"  {name:<8} " + ", ".join(f"{proto}={state}" for proto, state in routes.bgp_states(name, self.base).items()))

    def application_failover(self, region, seconds=15, rate=25.0):
        """Stop `region`'s application while the on-premises client sends `rate` requests/s, watch `seconds`, start it again.

        Returns (records sent after the stop, seconds until every answer came from the other region or None).
        """
        other = next(item for item in plan.REGIONS if item.name != region.name)
        topo = self.topology()
        flow = traffic.Traffic(rate=rate)
        try:
            time.sleep(2)
            stopped = time.time()
            topo.service_stop(f"{region.short}-app", "web")
            time.sleep(seconds)
        finally:
            records = flow.stop()
            topo.service_start(f"{region.short}-app", "web")
        after = [record for record in records if record["t"] >= stopped]
        moved = traffic.settled(after, f"{other.name} {other.short}-app")
        return after, (moved - stopped if moved is not None else None)


def site_playbook():
    """The playbook that deploys one region: playbooks/site.yml, or $ANYCAST_SITE_PLAYBOOK."""
    return os.environ.get("ANYCAST_SITE_PLAYBOOK", os.path.join(REPO, "playbooks", "site.yml"))


def demo(lab):
    """The README's main job: lab up, site.yml per region, requests spread over both regions, then one region fails."""
    lab.up()
    site = site_playbook()
    if not os.path.exists(site):
        log(f"{site} does not exist yet: the lab is up, nothing deployed")
        return
    for region in plan.REGIONS:
        started = time.monotonic()
        inventory = inventory_path(region, lab.base)
        log(f"ansible-playbook -i {os.path.relpath(inventory, REPO)} playbooks/site.yml")
        # ansible-playbook's own output is the progress here.
        if subprocess.run(["ansible-playbook", "-i", inventory, site], check=False).returncode:
            raise LabError(f"site.yml failed for {region.name}")
        log(f"{region.name} deployed in {time.monotonic() - started:.0f} s")
    log(f"40 requests from on-premises to {plan.ANYCAST_IP}: {dict(traffic.requests(40))}")
    first, second = plan.REGIONS
    log(f"stopping the application in {first.name} while a client sends 25 requests/s for 15 s ...")
    after, moved = lab.application_failover(first)
    log(f"after the stop: {dict(traffic.summary(after))}; every answer from {second.name} after "
        + (f"{moved:.1f} s" if moved is not None else "never (did a health checker withdraw the route?)"))
    log(f"application in {first.name} started again; waiting for its announcement to come back ...")
    deadline = time.monotonic() + 30
    answers = traffic.requests(40)
    while len(answers) < 2 and time.monotonic() < deadline:
        time.sleep(1)
        answers = traffic.requests(40)
    log(f"40 requests from on-premises: {dict(answers)}")
