"""Topology engine: build a spec's namespaces, links, hosts and services, tear them down, report on them.

State dir layout (everything a run needs to find its pieces again, also after a crash):
    topology.json      the validated spec (status/exec/service/down work from it alone)
    inventory.yml      Ansible inventory of the hosts
    instance_config.yml  Molecule's instance config (address, user, port, identity_file per host)
    ssh/id_ed25519     the key every host accepts for root
    hosts/<name>/      overlay upper/work/root and nspawn pid file
    run/               service pid files, BIRD control sockets
    logs/              host consoles and service output
"""

import json
import os
import shutil
import subprocess
import sys
import time

import yaml

from ..paths import LAB_DIR
from . import image, net, spec as spec_mod
from .host import Host, ensure_key, halt, nspawn_pids, overlay_mounts, remove_cgroups, unmount
from .util import RUN_DIR, LabError, log, machine_lock, run, running_pid, start_background, stop_background, tail

MGMT_ALIAS = "anycast-lab mgmt"
SEGMENT_BRIDGE = "br0"
SOCKET_PATH_MAX = 107  # sun_path


class Topology:
    """A spec bound to a state dir. Build with from_file() (a spec) or from_state() (what `up` saved)."""

    def __init__(self, spec, state_dir, image_cache=image.DEFAULT_CACHE):
        self.spec = spec
        self.state_dir = os.path.abspath(state_dir)
        self.image_cache = image_cache
        self.key = os.path.join(self.state_dir, "ssh", "id_ed25519")
        self.inventory_path = os.path.join(self.state_dir, "inventory.yml")
        self.instance_config_path = os.path.join(self.state_dir, "instance_config.yml")

    @classmethod
    def from_file(cls, path, state_dir, **kwargs):
        return cls(spec_mod.load(path), state_dir, **kwargs)

    @classmethod
    def from_state(cls, state_dir, **kwargs):
        path = os.path.join(os.path.abspath(state_dir), "topology.json")
        if not os.path.exists(path):
            raise LabError(f"state dir {state_dir} holds no topology.json: run `up SPEC --state {state_dir}` first")
        with open(path, encoding="utf-8") as f:
            return cls(spec_mod.parse(json.load(f)), state_dir, **kwargs)

    # -- names -----------------------------------------------------------------------------------------------------

    def netns(self, name):
        return net.ns_name(self.spec.prefix, name)

    def host(self, name):
        node = self.spec.node(name)
        if node.kind != "host":
            raise LabError(f"node {name} is a {node.kind}, not a host")
        return Host(self.spec.prefix, name, node.mgmt_ip, self.state_dir, image.image_path(self.image_cache))

    def _run_file(self, node, svc, suffix):
        return os.path.join(self.state_dir, "run", f"{node}.{svc}.{suffix}")

    def bird_socket(self, node, svc):
        """Control socket of a bird service: `birdc -s PATH` talks to it."""
        return self._run_file(node, svc, "ctl")

    # -- up --------------------------------------------------------------------------------------------------------

    def up(self, boot_timeout=60.0):
        """Create everything in the spec (idempotent: what exists is kept) and write the inventories."""
        started = time.monotonic()
        for node in self.spec.nodes:
            for svc in node.services:
                if svc.kind == "bird":
                    self._check_bird(node.name, svc)
        img = image.ensure_image(self.image_cache)
        with machine_lock():
            # Every check before the first change: a refused spec leaves the machine as it was.
            self._check_mgmt_ips_free()
            if self.spec.mgmt_bridge:
                net.check_root_address(self.spec.mgmt_bridge, self.spec.mgmt_address, MGMT_ALIAS)
            self._claim_prefix()
            os.makedirs(self.state_dir, exist_ok=True)
            self._save_spec()
            ensure_key(self.state_dir)
            if self.spec.mgmt_bridge:
                net.ensure_bridge(None, self.spec.mgmt_bridge, MGMT_ALIAS)
                net.add_address(None, self.spec.mgmt_bridge, self.spec.mgmt_address)
            self._build_network()
        hosts = [Host(self.spec.prefix, n.name, n.mgmt_ip, self.state_dir, img) for n in self.spec.hosts]
        for h in hosts:
            h.mount()
        # Boot all hosts at once, then wait for each: the lab's hosts come up in about the time of one.
        boot_started = {h.name: h.start() for h in hosts}
        for h in hosts:
            h.wait_ssh(boot_started[h.name] + boot_timeout)
            log(f"host {h.name} ({h.mgmt_ip}) SSH after {time.monotonic() - boot_started[h.name]:.1f} s")
        for node in self.spec.nodes:
            self._apply_sysctls(node)
            for svc in node.services:
                if svc.start:
                    self.service_start(node.name, svc.name)
        self._write_inventories()
        log(f"topology {self.spec.prefix} up in {time.monotonic() - started:.1f} s (state {self.state_dir})")

    def _claim_prefix(self):
        """One state dir per prefix at a time: two runs with the same prefix would share (and break) namespaces."""
        self._check_owner()
        owner_file = os.path.join(RUN_DIR, "owners", self.spec.prefix)
        os.makedirs(os.path.dirname(owner_file), exist_ok=True)
        with open(owner_file, "w", encoding="utf-8") as f:
            f.write(self.state_dir + "\n")

    def _check_owner(self):
        """Refuse to touch a prefix that another, still existing state dir has up (e.g. the same scenario from another checkout)."""
        try:
            with open(os.path.join(RUN_DIR, "owners", self.spec.prefix), encoding="utf-8") as f:
                owner = f.read().strip()
        except OSError:
            return
        if owner != self.state_dir and os.path.isdir(owner) and net.list_netns(self.spec.prefix):
            raise LabError(f"prefix {self.spec.prefix}: up from another state dir, {owner}; take it down there "
                           f"(`down --state {owner}`), or remove it by name with `down --prefix {self.spec.prefix}`")

    def _save_spec(self):
        with open(os.path.join(self.state_dir, "topology.json"), "w", encoding="utf-8") as f:
            json.dump(spec_mod.to_data(self.spec), f, indent=1)

    def _check_mgmt_ips_free(self):
        """A mgmt address must not be in use by another topology on the shared bridge (or by the root namespace)."""
        wanted = {n.mgmt_ip: n.name for n in self.spec.nodes if n.mgmt_ip}
        if not wanted:
            return
        taken = {ns: net.addresses_in_netns(ns) for ns in net.list_netns() if not ns.startswith(self.spec.prefix + ".")}
        taken["the root namespace"] = net.addresses_in_netns(None)
        for ip_addr, node in wanted.items():
            for owner, addrs in taken.items():
                if ip_addr in addrs:
                    raise LabError(f"nodes ({node}).mgmt_ip: {ip_addr} is already used by {owner}; pick another address")

    def _build_network(self):
        """Namespaces, segment bridges, veths, addresses and routes. Hosts get all of it before boot (networkd is off)."""
        for seg in self.spec.segments:
            ns = self.netns(seg)
            net.ensure_netns(ns)
            net.ensure_bridge(ns, SEGMENT_BRIDGE)
        for node in self.spec.nodes:
            self._build_node(node)

    def _segment_port(self, node_name, ifname):
        """Name of a node interface's peer inside its segment's namespace: p1, p2, ... in spec order (<= 15 chars)."""
        pairs = [(n.name, i.name) for n in self.spec.nodes for i in n.interfaces]
        return f"p{pairs.index((node_name, ifname)) + 1}"

    def _build_node(self, node):
        ns = self.netns(node.name)
        net.ensure_netns(ns)
        if node.mgmt_ip:
            root_if = net.root_veth_name(self.spec.prefix, node.name)
            net.ensure_veth(None, root_if, ns, spec_mod.MGMT_IF, f"{ns}/{spec_mod.MGMT_IF}")
            net.attach(None, root_if, self.spec.mgmt_bridge)
            net.add_address(ns, spec_mod.MGMT_IF, f"{node.mgmt_ip}/{self.spec.mgmt_prefixlen}")
            # A host made again gets a new MAC: drop the old ARP entry, or SSH waits ~30 s for it to expire.
            net.ip(None, "neigh", "flush", "to", node.mgmt_ip, "dev", self.spec.mgmt_bridge, check=False)
        for iface in node.interfaces:
            seg_ns, port = self.netns(iface.segment), self._segment_port(node.name, iface.name)
            net.ensure_veth(seg_ns, port, ns, iface.name, f"{ns}/{iface.name}")
            net.attach(seg_ns, port, SEGMENT_BRIDGE)
            for cidr in iface.addresses:
                net.add_address(ns, iface.name, cidr)
        for cidr in node.lo_addresses:
            net.add_address(ns, "lo", cidr)
        for route in node.routes:
            argv = ["route", "replace", route.to]
            if len(route.via) == 1:
                argv += ["via", route.via[0]]
            for gateway in route.via if len(route.via) > 1 else ():
                argv += ["nexthop", "via", gateway]
            argv += ["dev", route.dev] if route.dev else []
            argv += ["metric", str(route.metric)] if route.metric is not None else []
            net.ip(ns, *argv)

    def _apply_sysctls(self, node):
        # For hosts after boot: the container's systemd-sysctl would otherwise overwrite ours.
        for key, value in node.sysctls.items():
            run(["ip", "netns", "exec", self.netns(node.name), "sysctl", "-q", "-w", f"{key}={value}"])

    def reboot(self, name, timeout=60.0):
        """Reboot a host as a VM reboots: same disk (overlay), fresh kernel network state; returns seconds to SSH.

        The namespace is made again, so nothing set at runtime survives (nft rulesets, sysctls, conntrack,
        routes a daemon added): only what the host restores from its disk at boot, plus the spec's wiring.
        """
        node = self.spec.node(name)
        host = self.host(name)
        if not host.mounted():
            raise LabError(f"host {name} is not up (run up first)")
        host.stop()
        net.delete_netns(self.netns(name))
        with machine_lock():
            self._build_node(node)
        seconds = host.boot(timeout)
        self._apply_sysctls(node)
        log(f"host {name} rebooted, SSH after {seconds:.1f} s")
        return seconds

    def _write_inventories(self):
        hostvars, groups, instances = {}, {}, []
        for node in self.spec.hosts:
            hostvars[node.name] = dict(node.vars, ansible_host=node.mgmt_ip, ansible_user="root", ansible_port=22,
                                       ansible_ssh_private_key_file=self.key, ansible_python_interpreter="/usr/bin/python3",
                                       ansible_ssh_common_args="-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null")
            for group in node.groups:
                groups.setdefault(group, {"hosts": {}})["hosts"][node.name] = None
            instances.append({"instance": node.name, "address": node.mgmt_ip, "user": "root", "port": 22, "identity_file": self.key})
        _write_yaml(self.inventory_path, {"all": {"hosts": hostvars, "children": groups}})
        _write_yaml(self.instance_config_path, instances)

    # -- services --------------------------------------------------------------------------------------------------

    def _service(self, node_name, svc_name):
        node = self.spec.node(node_name)
        for svc in node.services:
            if svc.name == svc_name:
                return node, svc
        raise LabError(f"node {node_name} has no service {svc_name!r} (services: {', '.join(s.name for s in node.services) or 'none'})")

    def _check_bird(self, node_name, svc):
        """A bird service's config must exist and parse, and its control socket path must fit a unix socket."""
        sock = self.bird_socket(node_name, svc.name)
        if len(sock) > SOCKET_PATH_MAX:
            raise LabError(f"nodes ({node_name}).services ({svc.name}): control socket {sock} is longer than {SOCKET_PATH_MAX}; use a shorter state dir")
        where = f"nodes ({node_name}).services ({svc.name}).config"
        if not os.path.isfile(svc.config):
            raise LabError(f"{where}: file {svc.config} does not exist")
        check = run(["bird", "-p", "-c", svc.config], check=False)
        if check.returncode != 0:
            raise LabError(f"{where}: BIRD rejects {svc.config}: {(check.stderr or check.stdout).strip()}")

    def service_running(self, node_name, svc_name):
        self._service(node_name, svc_name)
        return running_pid(self._run_file(node_name, svc_name, "pid")) is not None

    def service_start(self, node_name, svc_name, timeout=10.0):
        """Start a service in its node's namespace (no-op when running) and wait until it serves."""
        node, svc = self._service(node_name, svc_name)
        pidfile = self._run_file(node.name, svc.name, "pid")
        if running_pid(pidfile) is not None:
            return False
        os.makedirs(os.path.dirname(pidfile), exist_ok=True)
        ready = self._run_file(node.name, svc.name, "ready")
        for stale in (ready, self.bird_socket(node.name, svc.name)):
            if os.path.exists(stale):
                os.unlink(stale)
        env = None
        if svc.kind == "bird":
            self._check_bird(node.name, svc)
            sock = self.bird_socket(node.name, svc.name)
            argv, ready = ["bird", "-f", "-c", svc.config, "-s", sock], sock
        elif svc.kind == "http":
            argv = [sys.executable, "-m", "anycast_lab.hosts.httpd", "--bind", svc.bind, "--port", str(svc.port),
                    "--body", svc.body, "--status", str(svc.status), "--ready-file", ready]
            env = dict(os.environ, PYTHONPATH=LAB_DIR)
        else:
            argv, ready = svc.argv, None
        log_file = os.path.join(self.state_dir, "logs", f"{node.name}.{svc.name}.log")
        start_background(["ip", "netns", "exec", self.netns(node.name)] + argv, pidfile, log_file, env=env)
        deadline = time.monotonic() + timeout
        while ready and not os.path.exists(ready):
            if running_pid(pidfile) is None or time.monotonic() > deadline:
                stop_background(pidfile)
                raise LabError(f"service {node.name}/{svc.name} did not come up; see {log_file}:\n{tail(log_file)}")
            time.sleep(0.05)
        return True

    def service_stop(self, node_name, svc_name):
        """Stop a service (SIGTERM to its process group, SIGKILL after 10 s); no-op when stopped."""
        self._service(node_name, svc_name)
        return stop_background(self._run_file(node_name, svc_name, "pid"))

    # -- use -------------------------------------------------------------------------------------------------------

    def exec(self, node_name, argv, check=False, timeout=None):
        """Run argv in a node: over SSH on a host (as a user would), `ip netns exec` in a plain namespace."""
        node = self.spec.node(node_name)
        if node.kind == "host":
            proc = self.host(node_name).ssh(argv, timeout=timeout)
        else:
            proc = subprocess.run(["ip", "netns", "exec", self.netns(node_name)] + list(argv), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, check=False, timeout=timeout)
        if check and proc.returncode != 0:
            raise LabError(f"{node_name}: {' '.join(argv)} failed (exit {proc.returncode}): {proc.stderr.strip()}")
        return proc

    def status(self):
        """What runs: per node its namespace, host state and services."""
        nodes = []
        for node in self.spec.nodes:
            item = {"name": node.name, "kind": node.kind, "netns": self.netns(node.name),
                    "netns_exists": net.netns_exists(self.netns(node.name)), "mgmt_ip": node.mgmt_ip}
            if node.kind == "host":
                item["running"] = self.host(node.name).running()
            item["services"] = {s.name: self.service_running(node.name, s.name) for s in node.services}
            nodes.append(item)
        return {"prefix": self.spec.prefix, "state_dir": self.state_dir, "nodes": nodes}

    # -- down ------------------------------------------------------------------------------------------------------

    def down(self):
        """Remove everything of this topology (also what a crashed run left behind) and keep only the key and logs."""
        self._check_owner()
        for node in self.spec.nodes:
            for svc in node.services:
                self.service_stop(node.name, svc.name)
        teardown(self.spec.prefix, self.state_dir, self.spec.mgmt_bridge)


def teardown(prefix, state_dir=None, mgmt_bridge=None):
    """Find a topology's leftovers by its prefix and remove them: processes, overlays, namespaces, root links.

    Works without a spec: after a crash, `down --prefix anm-x` is enough.
    """
    hosts_dir = os.path.join(state_dir, "hosts") if state_dir else None
    # Halt every host at once, found by name: also those whose pid files are gone (crash, lost state dir).
    halt(nspawn_pids(prefix))
    for name in sorted(os.listdir(hosts_dir)) if hosts_dir and os.path.isdir(hosts_dir) else []:
        Host(prefix, name, None, state_dir, None).stop()  # pid files, leftovers in the namespace
    for ns in net.list_netns(prefix):
        net.kill_netns_processes(ns)
    for target in overlay_mounts(prefix):
        unmount(target)
    remove_cgroups(prefix + ".", whole_prefix=True)
    with machine_lock():
        for ns in net.list_netns(prefix):
            net.delete_netns(ns)
        for link in net.root_links_with_alias(prefix):
            net.ip(None, "link", "del", link, check=False)
        # The mgmt bridge is shared by every topology of its kind: the last one out removes it.
        if mgmt_bridge and net.is_lab_bridge(mgmt_bridge, MGMT_ALIAS) and not net.bridge_ports(mgmt_bridge):
            net.ip(None, "link", "del", mgmt_bridge)
    if state_dir:
        for sub in ("hosts", "run"):
            shutil.rmtree(os.path.join(state_dir, sub), ignore_errors=True)
    owner = os.path.join(RUN_DIR, "owners", prefix)
    if os.path.exists(owner):
        os.unlink(owner)
    log(f"topology {prefix} down")


def _write_yaml(path, data):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        yaml.safe_dump(data, f, default_flow_style=False, sort_keys=False)
    os.replace(tmp, path)
