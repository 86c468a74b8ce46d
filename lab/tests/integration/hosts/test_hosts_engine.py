"""The lab engine against the real machine: namespaces, nspawn hosts with systemd and SSH, services, cleanup."""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from anycast_lab.hosts import LabError, Topology, image, spec as spec_mod
from anycast_lab.hosts import net
from anycast_lab.paths import LAB_DIR as LAB

from lab_helpers import NOTHING, PREFIX, PREFIX2, free_mgmt_ips, leftovers, spec_data


def make(state_dir, data):
    return Topology(spec_mod.parse(data), state_dir)


def cli(*args, state_dir=None):
    env = dict(os.environ, PYTHONPATH=LAB)
    if state_dir:
        env["ANYCAST_LAB_STATE"] = state_dir
    return subprocess.run([sys.executable, "-m", "anycast_lab.hosts", *args], env=env, capture_output=True, text=True, check=False)


def test_up_gives_a_working_host_and_peer(state_dir, bird_config):
    topo = make(state_dir, spec_data(bird_config=bird_config))
    topo.up()

    assert topo.exec("h1", ["systemctl", "is-system-running", "--wait"], timeout=60).stdout.strip() == "running"
    assert topo.exec("h1", ["hostname"]).stdout.strip() == "h1"
    assert topo.exec("h1", ["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip() == "1"
    # Capabilities: nft and conntrack need CAP_NET_ADMIN inside the container.
    topo.exec("h1", ["nft", "add", "table", "inet", "pytest"], check=True)
    topo.exec("h1", ["conntrack", "-L"], check=True)
    # Segment: both directions, and the peer's HTTP service.
    topo.exec("h1", ["ping", "-c", "1", "-W", "2", "10.10.2.10"], check=True)
    topo.exec("peer", ["ping", "-c", "1", "-W", "2", "10.10.2.4"], check=True)
    assert topo.exec("h1", ["curl", "-sS", "http://10.10.2.10:8080/"], check=True).stdout == "peer says hi\n"
    # The peer's BIRD answers on its own control socket.
    birdc = subprocess.run(["birdc", "-s", topo.bird_socket("peer", "rs"), "show", "status"], capture_output=True, text=True, check=True)
    assert "Router ID is 10.10.2.10" in birdc.stdout
    # Routes and loopback addresses of the spec are in place.
    assert "10.99.0.0/16 via 10.10.2.4" in topo.exec("peer", ["ip", "route"], check=True).stdout
    assert "10.250.0.10/32" in topo.exec("peer", ["ip", "-4", "addr", "show", "lo"], check=True).stdout

    # The inventory reaches the host with plain ansible.
    ping = subprocess.run(["ansible", "-i", topo.inventory_path, "nva", "-m", "ansible.builtin.ping"], capture_output=True, text=True, check=False)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    topo.down()


def test_host_is_a_golden_image(state_dir):
    """Everything a role installs is already there (no mirror is reachable), login is by key only, no getty."""
    topo = make(state_dir, spec_data())
    topo.up()
    installed = topo.exec("h1", ["dpkg-query", "-W", "-f", "${Package} ${Status}\\n"] + list(image.PACKAGES), check=True).stdout
    assert sorted(line.split()[0] for line in installed.splitlines() if line.endswith("install ok installed")) == sorted(image.PACKAGES)
    # ansible.builtin.apt without a cache update must find the packages offline.
    assert topo.exec("h1", ["python3", "-c", "import apt; print(apt.Cache()['bird2'].is_installed)"], check=True).stdout.strip() == "True"
    sshd = topo.exec("h1", ["sshd", "-T"], check=True).stdout
    assert "passwordauthentication no" in sshd and "permitrootlogin without-password" in sshd
    assert topo.exec("h1", ["pgrep", "-f", "getty"]).returncode == 1
    assert topo.exec("h1", ["systemctl", "is-enabled", "bird"]).stdout.strip() == "disabled"
    machine_id = topo.exec("h1", ["cat", "/etc/machine-id"], check=True).stdout.strip()
    assert len(machine_id) == 32 and machine_id != "0" * 32
    topo.down()


def test_http_service_can_be_failed_and_restored(state_dir):
    topo = make(state_dir, spec_data())
    topo.up()
    url = ["curl", "-sS", "--max-time", "3", "http://10.10.2.10:8080/"]
    assert topo.exec("h1", url).returncode == 0
    assert topo.service_stop("peer", "web") is True
    assert not topo.service_running("peer", "web")
    assert topo.exec("h1", url).returncode != 0
    topo.service_start("peer", "web")
    assert topo.exec("h1", url, check=True).stdout == "peer says hi\n"
    topo.down()


def test_backend_can_answer_503_instead(state_dir):
    """The README's recipe: a second http service on the same port, swapped in, makes the application unhealthy but reachable."""
    data = spec_data()
    data["nodes"][1]["services"].append({"name": "broken", "kind": "http", "port": 8080, "status": 503, "body": "down\n", "start": False})
    topo = make(state_dir, data)
    topo.up()
    code = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "3", "http://10.10.2.10:8080/"]
    assert topo.exec("h1", code).stdout == "200"
    assert not topo.service_running("peer", "broken")
    topo.service_stop("peer", "web")
    topo.service_start("peer", "broken")
    assert topo.exec("h1", code).stdout == "503"
    topo.down()


def test_reboot_keeps_the_disk_and_forgets_runtime_state(state_dir):
    """As a VM reboot: files stay; nft rules, runtime sysctls and enabled-but-unstarted units come from disk only."""
    topo = make(state_dir, spec_data())
    topo.up()
    boot_id = topo.exec("h1", ["cat", "/proc/sys/kernel/random/boot_id"], check=True).stdout
    topo.exec("h1", ["sh", "-c", "echo kept > /root/on-disk; nft add table inet runtime_only; sysctl -qw net.ipv4.ip_default_ttl=42"], check=True)
    topo.exec("h1", ["systemctl", "enable", "bird"], check=True)  # enabled, not started: only a boot starts it

    assert topo.reboot("h1") < 60
    assert topo.exec("h1", ["cat", "/proc/sys/kernel/random/boot_id"], check=True).stdout != boot_id
    assert topo.exec("h1", ["cat", "/root/on-disk"], check=True).stdout == "kept\n"
    assert "runtime_only" not in topo.exec("h1", ["nft", "list", "tables"], check=True).stdout
    assert topo.exec("h1", ["sysctl", "-n", "net.ipv4.ip_default_ttl"], check=True).stdout.strip() == "64"
    assert topo.exec("h1", ["sysctl", "-n", "net.ipv4.ip_forward"], check=True).stdout.strip() == "1"  # the spec's, again
    assert topo.exec("h1", ["systemctl", "is-active", "bird"]).stdout.strip() == "active"
    # The wiring is back: the segment and the peer work as before.
    assert topo.exec("h1", ["curl", "-sS", "--max-time", "3", "http://10.10.2.10:8080/"], check=True).stdout == "peer says hi\n"
    topo.down()
    assert leftovers() == NOTHING


def test_up_down_up_is_clean(state_dir):
    topo = make(state_dir, spec_data())
    topo.up()
    topo.up()  # idempotent: nothing breaks, host keeps running
    topo.exec("h1", ["touch", "/root/from-first-life"], check=True)
    topo.down()
    assert leftovers() == NOTHING
    assert not os.path.exists(os.path.join(state_dir, "hosts"))
    assert net.root_veth_name(PREFIX, "h1") not in net.bridge_ports("anm-mgmt") if net.link_exists(None, "anm-mgmt") else True

    topo.up()
    # A fresh host: the overlay of the first life is gone.
    assert topo.exec("h1", ["test", "-e", "/root/from-first-life"]).returncode == 1
    assert topo.exec("h1", ["systemctl", "is-system-running", "--wait"], timeout=60).stdout.strip() == "running"
    topo.down()
    assert leftovers() == NOTHING


def test_down_cleans_up_after_a_crashed_up(state_dir):
    """Kill `up` while the host boots, lose the pid files, then `down --prefix` finds everything by name."""
    spec_file = os.path.join(state_dir, "topology.yml")
    with open(spec_file, "w", encoding="utf-8") as f:
        json.dump(spec_data(), f)
    env = dict(os.environ, PYTHONPATH=LAB)
    # pylint: disable-next=consider-using-with
    up = subprocess.Popen([sys.executable, "-m", "anycast_lab.hosts", "up", spec_file, "--state", state_dir], env=env, start_new_session=True)
    deadline = time.monotonic() + 180  # includes building the image when it is missing
    while not leftovers()["nspawn"]:
        assert up.poll() is None, "up ended before the host started booting"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(up.pid, signal.SIGKILL)
    up.wait()
    before = leftovers()
    assert before["netns"] and before["overlays"] and before["nspawn"] and before["root_links"]
    os.unlink(os.path.join(state_dir, "hosts", "h1", "nspawn.pid"))

    down = cli("down", "--prefix", PREFIX)
    assert down.returncode == 0, down.stderr
    assert leftovers() == NOTHING
    # The state dir's own down still works afterwards (nothing left to do).
    Topology.from_state(state_dir).down()


def test_refuses_a_mgmt_range_that_overlaps_a_root_route(state_dir):
    """The machine's own connected route (eth0's subnet) must never get a lab address on top of it."""
    routes = json.loads(subprocess.run(["ip", "-j", "-4", "route", "show"], capture_output=True, text=True, check=True).stdout)
    connected = next(r["dst"] for r in routes if r.get("dst") not in ("default", None) and "/" in r["dst"])
    host_part = connected.split("/")[0].rsplit(".", 1)[0]
    data = spec_data()
    data["mgmt"] = {"bridge": "anm-overlap", "address": f"{host_part}.250/{connected.split('/')[1]}"}
    data["nodes"][0]["mgmt_ip"] = f"{host_part}.251"
    topo = make(state_dir, data)
    with pytest.raises(LabError, match=r"mgmt\.address .*overlaps the root namespace's route"):
        topo.up()
    assert not net.link_exists(None, "anm-overlap")
    assert leftovers() == NOTHING


def test_refuses_a_mgmt_ip_used_by_another_topology(state_dir, tmp_path):
    first = make(state_dir, spec_data())
    first.up()
    taken = first.spec.node("h1").mgmt_ip
    second = make(str(tmp_path), spec_data(prefix=PREFIX2, mgmt_ip=taken))
    with pytest.raises(LabError, match=rf"nodes \(h1\)\.mgmt_ip: {re.escape(taken)} is already used by {PREFIX}\.h1"):
        second.up()
    assert leftovers(PREFIX2) == NOTHING
    # The first topology is untouched.
    assert first.exec("h1", ["true"]).returncode == 0
    first.down()


def test_refuses_to_take_over_an_interface_that_is_not_a_lab_bridge(state_dir):
    data = spec_data()
    data["mgmt"] = {"bridge": "lo", "address": "198.18.3.1/24"}
    data["nodes"][0]["mgmt_ip"] = "198.18.3.10"
    with pytest.raises(LabError, match=r"mgmt\.bridge lo: an interface of that name exists and is not a lab bridge"):
        make(state_dir, data).up()
    lo = subprocess.run(["ip", "-4", "addr", "show", "dev", "lo"], capture_output=True, text=True, check=True).stdout
    assert "198.18.3.1" not in lo
    assert leftovers() == NOTHING


def test_refuses_a_second_address_on_a_shared_bridge(state_dir, tmp_path):
    first = make(state_dir, spec_data())
    first.up()
    data = spec_data(prefix=PREFIX2, mgmt_ip="198.18.2.10")
    data["mgmt"]["address"] = "198.18.2.1/24"
    with pytest.raises(LabError, match=r"mgmt\.address 198\.18\.2\.1/24: bridge anm-mgmt already carries 198\.18\.1\.1/24"):
        make(str(tmp_path), data).up()
    assert leftovers(PREFIX2) == NOTHING
    first.down()


def test_mgmt_bridge_mac_stays_while_other_topologies_come_and_go(state_dir, tmp_path):
    """A host's ARP entry for the bridge must stay valid, or SSH to it stalls ~30 s when ports join or leave."""
    first = make(state_dir, spec_data())
    first.up()
    with open("/sys/class/net/anm-mgmt/address", encoding="utf-8") as f:
        mac = f.read()
    with open("/sys/class/net/anm-mgmt/addr_assign_type", encoding="utf-8") as f:
        assert f.read().strip() == "3"  # NET_ADDR_SET: the kernel no longer follows the ports' MACs
    second = make(str(tmp_path), spec_data(prefix=PREFIX2, mgmt_ip=free_mgmt_ips(1)[0]))
    second.up()
    second.down()
    with open("/sys/class/net/anm-mgmt/address", encoding="utf-8") as f:
        assert f.read() == mac
    started = time.monotonic()
    assert first.exec("h1", ["true"], timeout=10).returncode == 0
    assert time.monotonic() - started < 5
    first.down()


@pytest.mark.parametrize("content, message", [
    (None, r"nodes \(peer\)\.services \(rs\)\.config: file .*rs\.conf does not exist"),
    ("router id 10.10.2.10;\nprotocol devic {}\n", r"nodes \(peer\)\.services \(rs\)\.config: BIRD rejects .*rs\.conf: .*syntax error"),
])
def test_bad_bird_config_is_refused_before_anything_is_made(state_dir, content, message):
    config = os.path.join(state_dir, "rs.conf")
    if content is not None:
        with open(config, "w", encoding="utf-8") as f:
            f.write(content)
    with pytest.raises(LabError, match=message):
        make(state_dir, spec_data(bird_config=config)).up()
    assert leftovers() == NOTHING
    assert not os.path.exists(os.path.join(state_dir, "topology.json"))


def test_two_topologies_come_up_at_once(state_dir, tmp_path):
    """Molecule scenarios run side by side on one machine share the mgmt bridge: concurrent ups must both work."""
    ips = free_mgmt_ips(2)
    topos = [make(state_dir, spec_data(mgmt_ip=ips[0])), make(str(tmp_path), spec_data(prefix=PREFIX2, mgmt_ip=ips[1]))]
    errors = []

    def up(topo):
        try:
            topo.up()
        except LabError as exc:  # reported below; the thread must not die silently
            errors.append(exc)

    threads = [threading.Thread(target=up, args=(t,)) for t in topos]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for topo in topos:
        assert topo.exec("h1", ["ping", "-c", "1", "-W", "2", "10.10.2.10"]).returncode == 0
    for topo in topos:
        topo.down()
    assert leftovers() == NOTHING and leftovers(PREFIX2) == NOTHING


def test_cli_status_exec_service(state_dir):
    spec_file = os.path.join(state_dir, "topology.yml")
    with open(spec_file, "w", encoding="utf-8") as f:
        json.dump(spec_data(), f)
    assert cli("up", spec_file, state_dir=state_dir).returncode == 0
    status = json.loads(cli("status", "--json", state_dir=state_dir).stdout)
    assert {n["name"]: n.get("running") for n in status["nodes"]} == {"h1": True, "peer": None}
    assert status["nodes"][1]["services"] == {"web": True}
    # exec passes the command's output and exit code through, on a host (SSH) and in a namespace.
    assert cli("exec", "h1", "--", "sh", "-c", "hostname; exit 3", state_dir=state_dir).returncode == 3
    assert cli("exec", "h1", "--", "hostname", state_dir=state_dir).stdout == "h1\n"
    assert "10.10.2.10/24" in cli("exec", "peer", "--", "ip", "-4", "addr", "show", "eth0", state_dir=state_dir).stdout
    assert cli("service", "stop", "peer", "web", state_dir=state_dir).returncode == 0
    assert json.loads(cli("status", "--json", state_dir=state_dir).stdout)["nodes"][1]["services"] == {"web": False}
    bad = cli("service", "stop", "peer", "nope", state_dir=state_dir)
    assert bad.returncode == 2 and bad.stderr == "error: node peer has no service 'nope' (services: web)\n"
    assert cli("down", state_dir=state_dir).returncode == 0
    assert leftovers() == NOTHING


def test_cli_bad_spec_is_one_clear_line(state_dir):
    spec_file = os.path.join(state_dir, "topology.yml")
    data = spec_data()
    data["nodes"][0]["interfaces"][0]["segment"] = "lna"
    with open(spec_file, "w", encoding="utf-8") as f:
        json.dump(data, f)
    proc = cli("up", spec_file, "--state", state_dir)
    assert proc.returncode == 2
    assert proc.stderr == f"error: {spec_file}: nodes[0] (h1).interfaces[0].segment: unknown segment 'lna' (segments: lan)\n"
    assert leftovers() == NOTHING


def test_same_prefix_from_another_state_dir_is_left_alone(state_dir, tmp_path):
    """The same scenario run from a second checkout must neither take over nor tear down the first one's lab."""
    first = make(state_dir, spec_data())
    first.up()
    other = make(str(tmp_path), spec_data(mgmt_ip=free_mgmt_ips(1)[0]))
    for action in (other.up, other.down):
        with pytest.raises(LabError, match=rf"prefix {PREFIX}: up from another state dir, {re.escape(state_dir)}"):
            action()
    assert first.exec("h1", ["true"], timeout=10).returncode == 0
    # By name it goes (crash recovery), whoever owned it.
    assert cli("down", "--prefix", PREFIX).returncode == 0
    assert leftovers() == NOTHING


def test_hosts_do_not_share_cgroups(state_dir):
    """Each host's systemd owns its unit cgroups: a shared tree made units of one host fail with 219/CGROUP
    when another host's systemd removed the same-named unit's cgroup under it."""
    ips = free_mgmt_ips(2)
    data = spec_data(mgmt_ip=ips[0])
    data["nodes"].insert(1, dict(data["nodes"][0], name="h2", mgmt_ip=ips[1], interfaces=[{"name": "eth1", "segment": "lan", "address": "10.10.2.5/24"}]))
    topo = make(state_dir, data)
    topo.up()
    topo.exec("h1", ["systemd-run", "--unit=anycast-probe", "sleep", "300"], check=True)
    probe = ["sh", "-c", "ls -d /sys/fs/cgroup/*/system.slice/anycast-probe.service"]
    assert topo.exec("h1", probe).returncode == 0
    assert topo.exec("h2", probe).returncode != 0
    topo.down()
    assert not [path for path in ("/sys/fs/cgroup/systemd/anycast-lab", "/sys/fs/cgroup/unified/anycast-lab", "/sys/fs/cgroup/anycast-lab")
                if os.path.isdir(path) and any(e.startswith(PREFIX + ".") for e in os.listdir(path))]
