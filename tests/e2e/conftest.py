"""End-to-end fixtures: the two-region lab, brought up once per test session.

`lab` is anycast_lab.lab.Lab after `up` (left running when it was already up before the session,
taken down afterwards otherwise; ANYCAST_LAB_KEEP=1 keeps it). `network` is the real
azure-mgmt-network client against the lab's ARM emulator, authenticated as the lab's service principal.
`testvm` drives the spare VM of a region's NVA subnet: a BGP speaker and services the tests control.

Opt-in: ANYCAST_E2E_ALERTS=<dir> records every lab NVA's checker metrics during the session and each test's window,
then writes <dir>/alerts.md, which alert of monitoring/prometheus/anycast-nva.rules.yml fired during which test
(anycast_lab.alert_report). Unset, nothing of it runs; set, its errors are logged and never fail a test.
"""
import fcntl
import json
import os
import subprocess
import time

import pytest
import yaml

from anycast_lab.alert_report import E2eAlerts
from anycast_lab.hosts.util import running_pid
from anycast_lab.lab import Lab, site_playbook
from anycast_lab.paths import LAB_LOCK, REPO  # LAB_LOCK: shared with the benchmarks (bench/labbench.py)
from anycast_lab.regions import plan, routers, routes

TEST_PREFIX = "10.250.0.99/32"   # the tests' own anycast /32: never the service's 10.250.0.10
TEST_ASN = 65010
ALERTS = E2eAlerts(os.environ["ANYCAST_E2E_ALERTS"]) if os.environ.get("ANYCAST_E2E_ALERTS") else None


def wait_for(predicate, timeout, what, interval=0.2):
    """Poll until predicate() is truthy; fail the test with `what` and the time waited otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"after {timeout} s: {what}")
        time.sleep(interval)


def hold_for(predicate, seconds, what, interval=0.2):
    """Fail as soon as predicate() turns truthy within `seconds` (something that must NOT happen)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            pytest.fail(what)
        time.sleep(interval)


@pytest.fixture(scope="session")
def lab():
    # The lab is one per machine: wait for a benchmark that is driving it to finish.
    lock = open(LAB_LOCK, "w", encoding="utf-8")  # pylint: disable=consider-using-with  # held for the session
    fcntl.flock(lock, fcntl.LOCK_EX)
    handle = Lab()
    was_up = running_pid(handle.pid_file) is not None and os.path.exists(os.path.join(handle.base, "topology.json"))
    started = time.monotonic()
    handle.up()
    print(f"\nlab up in {time.monotonic() - started:.1f} s", flush=True)
    yield handle
    if not was_up and os.environ.get("ANYCAST_LAB_KEEP") != "1":
        handle.down()
    lock.close()


def pytest_collection_modifyitems(items):
    """A module that brings the lab up at another size (its LAB_SIZE) runs after every test of the default lab, which
    is deployed once per session (`deployed`) and would be gone under them."""
    items.sort(key=lambda item: getattr(getattr(item, "module", None), "LAB_SIZE", None) is not None)  # stable otherwise


@pytest.fixture(scope="session", autouse=True)
def alerts_recording(request):
    """ANYCAST_E2E_ALERTS=<dir>: the lab's checkers recorded for the whole session, alerts.md written at its end."""
    if ALERTS is None:
        yield
        return
    try:
        handle = request.getfixturevalue("lab")  # up before the recording starts, down after it ends
        ALERTS.start(handle.topology(), plan.regions())
    except Exception as exc:  # pylint: disable=broad-except  # the tests that need the lab report it themselves
        print(f"\ne2e alerts: no recording: {exc!r}", flush=True)
    yield
    ALERTS.finish()


def pytest_runtest_logstart(nodeid, location):  # pylint: disable=unused-argument
    if ALERTS is not None:
        ALERTS.test_started(nodeid)


def pytest_runtest_logreport(report):
    if ALERTS is not None and not report.passed:
        ALERTS.test_outcome(report.nodeid, report.outcome if report.when == "call" else f"{report.outcome} in {report.when}")


def pytest_runtest_logfinish(nodeid, location):  # pylint: disable=unused-argument
    if ALERTS is not None:
        ALERTS.test_finished(nodeid)


@pytest.fixture(scope="session")
def network(lab):  # pylint: disable=redefined-outer-name
    return lab.arm().network_client()


def onprem_route(prefix=TEST_PREFIX):
    """The on-premises router's BGP routes for a prefix (parsed `birdc show route all`)."""
    return [route for route in routes.parse_routes(routers.birdc("onprem", "show", "route", prefix, "all", check=False)) if route["network"] == prefix]


class TestVm:
    """The spare VM of a region's NVA subnet (10.x.2.10), in its own namespace: BIRD and nftables run by the tests."""

    def __init__(self, lab_handle, region, workdir):
        self.lab = lab_handle
        self.region = region
        self.ns = plan.ns(f"{region.short}-testvm")
        self.conf = os.path.join(workdir, f"{region.short}-testvm.conf")
        self.ctl = os.path.join(workdir, f"{region.short}-testvm.ctl")
        self.pid = os.path.join(workdir, f"{region.short}-testvm.pid")
        self.peer_name = f"{region.short}-testvm"

    def ip_netns(self, *argv, check=True):
        return subprocess.run(["ip", "netns", "exec", self.ns] + list(argv), capture_output=True, text=True, check=check)

    def write_bird(self, prepend=()):
        """Announce TEST_PREFIX to both Route Server instances, optionally with AS-path prepends."""
        prepends = "".join(f" bgp_path.prepend({asn});" for asn in prepend)
        sessions = "\n".join(
            f"protocol bgp rs{i} {{ local {self.region.testvm_ip} as {TEST_ASN}; neighbor {ip} as {plan.RS_ASN}; multihop; "
            f"connect retry time 1; ipv4 {{ import none; export filter announce; }}; }}" for i, ip in enumerate(self.region.rs_ips))
        with open(self.conf, "w", encoding="utf-8") as handle:
            handle.write(f"router id {self.region.testvm_ip};\nprotocol device {{}}\n"
                         f"protocol static {{ ipv4; route {TEST_PREFIX} blackhole; }}\n"
                         f"filter announce {{ if net = {TEST_PREFIX} then {{{prepends} accept; }} reject; }}\n{sessions}\n")

    def start(self):
        self.write_bird()
        self.ip_netns("ip", "addr", "replace", TEST_PREFIX, "dev", "lo")
        self.ip_netns("bird", "-c", self.conf, "-s", self.ctl, "-P", self.pid)

    def reconfigure(self, prepend=()):
        self.write_bird(prepend)
        out = subprocess.run(["birdc", "-s", self.ctl, "configure"], capture_output=True, text=True, check=True).stdout
        assert "Reconfigured" in out, out

    def established(self):
        out = subprocess.run(["birdc", "-s", self.ctl, "show", "protocols"], capture_output=True, text=True, check=False).stdout
        return {line.split()[0]: "Established" in line for line in out.splitlines() if line.startswith("rs")}

    def stop(self):
        subprocess.run(["birdc", "-s", self.ctl, "down"], capture_output=True, check=False)
        self.ip_netns("ip", "addr", "del", TEST_PREFIX, "dev", "lo", check=False)


@pytest.fixture
def testvms(lab, tmp_path):  # pylint: disable=redefined-outer-name
    """Both regions' test VMs, BIRD running; stopped afterwards."""
    vms = {region.short: TestVm(lab, region, str(tmp_path)) for region in plan.REGIONS}
    for vm in vms.values():
        vm.start()
    yield vms
    for vm in vms.values():
        vm.stop()


class Azure:
    """Changes the tests make through the real SDK, each undone after the test (the lab stays as seeded)."""

    def __init__(self, client):
        self.client = client
        self.undo = []

    def add_peer(self, region, name, peer_ip, asn):
        from azure.mgmt.network.models import BgpConnection  # pylint: disable=import-outside-toplevel
        self.client.virtual_hub_bgp_connection.begin_create_or_update(
            region.resource_group, region.route_server, name, BgpConnection(peer_ip=peer_ip, peer_asn=asn)).result()
        self.undo.append(lambda: self.remove_peer(region, name))

    def remove_peer(self, region, name):
        self.client.virtual_hub_bgp_connection.begin_delete(region.resource_group, region.route_server, name).result()

    def set_branch_to_branch(self, region, enabled):
        hubs = self.client.virtual_hubs
        hub = hubs.get(region.resource_group, region.route_server)
        before = hub.allow_branch_to_branch_traffic
        hub.allow_branch_to_branch_traffic = enabled
        hubs.begin_create_or_update(region.resource_group, region.route_server, hub).result()

        def restore():
            current = hubs.get(region.resource_group, region.route_server)
            current.allow_branch_to_branch_traffic = before
            hubs.begin_create_or_update(region.resource_group, region.route_server, current).result()
        self.undo.append(restore)

    def set_ip_forwarding(self, region, nic_name, enabled):
        nics = self.client.network_interfaces
        nic = nics.get(region.resource_group, nic_name)
        before = nic.enable_ip_forwarding
        nic.enable_ip_forwarding = enabled
        nics.begin_create_or_update(region.resource_group, nic_name, nic).result()

        def restore():
            current = nics.get(region.resource_group, nic_name)
            current.enable_ip_forwarding = before
            nics.begin_create_or_update(region.resource_group, nic_name, current).result()
        self.undo.append(restore)

    def associate_route_table(self, region, vnet, subnet_name, table_name, routes_):
        """Create a route table with `routes_` [(name, prefix, next hop type, next hop ip)] and associate it with a subnet."""
        from azure.mgmt.network.models import Route, RouteTable  # pylint: disable=import-outside-toplevel
        table = self.client.route_tables.begin_create_or_update(region.resource_group, table_name, RouteTable(
            location=region.name, routes=[Route(name=name, address_prefix=prefix, next_hop_type=hop_type, next_hop_ip_address=hop_ip)
                                          for name, prefix, hop_type, hop_ip in routes_])).result()
        self.undo.append(lambda: self.client.route_tables.begin_delete(region.resource_group, table_name).result())
        self.set_subnet_route_table(region, vnet, subnet_name, table)

    def set_subnet_route_table(self, region, vnet, subnet_name, table):
        subnet = self.client.subnets.get(region.resource_group, vnet, subnet_name)
        before = subnet.route_table
        subnet.route_table = table
        self.client.subnets.begin_create_or_update(region.resource_group, vnet, subnet_name, subnet).result()

        def restore():
            current = self.client.subnets.get(region.resource_group, vnet, subnet_name)
            current.route_table = before
            self.client.subnets.begin_create_or_update(region.resource_group, vnet, subnet_name, current).result()
        self.undo.append(restore)

    def cleanup(self):
        while self.undo:
            self.undo.pop()()


@pytest.fixture
def azure(network):  # pylint: disable=redefined-outer-name
    changes = Azure(network)
    yield changes
    changes.cleanup()


# The playbook the deployed-scenario tests run; ANYCAST_SITE_PLAYBOOK points elsewhere (e.g. while it is written).
SITE = site_playbook()


class PlaybookRun:
    """One ansible-playbook run: return code, output and the PLAY RECAP per host."""

    def __init__(self, proc):
        self.rc = proc.returncode
        self.output = proc.stdout + proc.stderr
        self.recap = {}
        for line in proc.stdout.splitlines():
            fields = line.split()
            if len(fields) > 2 and fields[1] == ":" and "ok=" in line:
                self.recap[fields[0]] = {key: int(value) for key, value in (item.split("=") for item in fields[2:])}

    def changed(self):
        return sum(host["changed"] for host in self.recap.values())


def site(region, extra_vars=None, name=None, inventory=None):
    """Run the site playbook (or playbook `name` beside it) for one lab region, with optional extra vars (a dict);
    `inventory`: the region's inventory, default the checked-in one (inventories/lab/<region>, 2 NVAs)."""
    path = os.path.join(os.path.dirname(SITE), name) if name else SITE
    argv = ["ansible-playbook", "-i", inventory or os.path.join(REPO, "inventories", "lab", region.name), path]
    if extra_vars:
        argv += ["-e", json.dumps(extra_vars)]
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    return PlaybookRun(subprocess.run(argv, capture_output=True, text=True, check=False, cwd=REPO, env=env))


def hostvar(region, host, name):
    """A variable of a lab NVA as Ansible resolves it: the inventory's value, else the role's default."""
    out = subprocess.run(["ansible-inventory", "-i", os.path.join(REPO, "inventories", "lab", region.name), "--host", host],
                         capture_output=True, text=True, check=True).stdout
    value = json.loads(out).get(name)
    if value is None:
        role = name.split("_", 1)[0]
        with open(os.path.join(REPO, "roles", role, "defaults", "main.yml"), encoding="utf-8") as handle:
            value = yaml.safe_load(handle)[name]
    return value


@pytest.fixture(scope="session")
def deployed(lab):  # pylint: disable=redefined-outer-name
    """Both regions deployed with the site playbook (once per session); skipped while the playbook does not exist."""
    if not os.path.exists(SITE):
        pytest.skip(f"{SITE} does not exist yet")
    for region in plan.REGIONS:
        started = time.monotonic()
        run = site(region)
        assert run.rc == 0, f"site.yml failed for {region.name}:\n{run.output[-4000:]}"
        print(f"\nsite.yml {region.name}: {time.monotonic() - started:.0f} s, changed={run.changed()}", flush=True)
    wait_for(lambda: len(onprem_route(f"{plan.ANYCAST_IP}/32")) == 2, 60, "on-premises did not learn the anycast IP from both regions")
    return lab
