"""Network namespaces, links and the root-namespace guard, all through iproute2.

Names: a node or segment NAME of a topology with prefix PREFIX lives in the namespace `PREFIX.NAME`;
the dot cannot occur in a prefix or a name, so `PREFIX.` finds exactly one topology's leftovers.
"""

import hashlib
import ipaddress
import json
import os
import signal
import time

from .util import LabError, run, wait_gone

NETNS_DIR = "/run/netns"


def ns_name(prefix, name):
    """Namespace of a node or segment."""
    return f"{prefix}.{name}"


def list_netns(prefix=None):
    """Names of existing namespaces, optionally only those of one topology."""
    names = sorted(os.listdir(NETNS_DIR)) if os.path.isdir(NETNS_DIR) else []
    return [n for n in names if prefix is None or n.startswith(prefix + ".")]


def netns_exists(ns):
    return os.path.exists(os.path.join(NETNS_DIR, ns))


def ensure_netns(ns):
    """Create the namespace with lo up (idempotent)."""
    if not netns_exists(ns):
        run(["ip", "netns", "add", ns])
    run(["ip", "-n", ns, "link", "set", "lo", "up"])


def netns_pids(ns):
    """Pids of every process whose network namespace is ns (the container's processes too)."""
    proc = run(["ip", "netns", "pids", ns], check=False)
    return [int(p) for p in proc.stdout.split()] if proc.returncode == 0 else []


def kill_netns_processes(ns, timeout=5.0):
    """SIGTERM then SIGKILL everything left inside a namespace, so it can be deleted for good."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = netns_pids(ns)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout  # one wait for all of them, not one per process
        for pid in pids:
            wait_gone(pid, max(0.0, deadline - time.monotonic()))


def delete_netns(ns):
    """Delete a namespace; its veth ends go with it, and so do their peers in other namespaces."""
    if netns_exists(ns):
        run(["ip", "netns", "del", ns])


def link_exists(ns, ifname):
    return ip(ns, "link", "show", "dev", ifname, check=False).returncode == 0


def ip(ns, *args, check=True):
    """`ip` in a namespace (ns=None: the root namespace)."""
    return run(["ip"] + (["-n", ns] if ns else []) + list(args), check=check)


def ensure_veth(ns_a, if_a, ns_b, if_b, alias):
    """A veth pair from ns_a/if_a (ns_a None = root namespace) to ns_b/if_b, both up; alias tags both ends for cleanup."""
    if not link_exists(ns_a, if_a):
        ip(ns_a, "link", "add", if_a, "type", "veth", "peer", "name", if_b, "netns", ns_b)
    for ns, ifname in ((ns_a, if_a), (ns_b, if_b)):
        ip(ns, "link", "set", "dev", ifname, "alias", alias)
        ip(ns, "link", "set", "dev", ifname, "up")


def ensure_bridge(ns, name, alias=None):
    """A bridge that forwards at once (no STP delay), up, with a fixed MAC address.

    Left alone, a bridge takes the lowest MAC of its ports and changes it as ports come and go: the hosts'
    ARP entries for the bridge's address then go stale and SSH stalls for ~30 s. A set MAC never changes.
    """
    if not link_exists(ns, name):
        mac = "02:" + ":".join(hashlib.sha1(name.encode()).hexdigest()[i:i + 2] for i in range(0, 10, 2))
        ip(ns, "link", "add", name, "address", mac, "type", "bridge", "stp_state", "0", "forward_delay", "0")
    elif ns is None and _read(f"/sys/class/net/{name}/addr_assign_type") != "3":
        # A bridge made before this fix: pin the MAC it has now (setting it marks it fixed; nobody sees a change).
        ip(None, "link", "set", "dev", name, "address", _read(f"/sys/class/net/{name}/address"))
    if alias:
        ip(ns, "link", "set", "dev", name, "alias", alias)
    ip(ns, "link", "set", "dev", name, "up")


def _read(path):
    with open(path, encoding="utf-8") as f:
        return f.read().strip()


def attach(ns, ifname, bridge):
    ip(ns, "link", "set", "dev", ifname, "master", bridge)


def add_address(ns, ifname, cidr):
    """Add an address unless it is there already (`replace` would reset its lifetime flags, harmless either way)."""
    ip(ns, "addr", "replace", cidr, "dev", ifname)


def root_veth_name(prefix, node):
    """Root-namespace end of a host's management veth: short (<= 15 chars) and unique per topology and node."""
    digest = hashlib.sha1(f"{prefix}.{node}".encode()).hexdigest()[:10]
    return f"{prefix[:3]}{digest}"


def root_links_with_alias(prefix):
    """Root-namespace links tagged by a topology (leftovers after a crash)."""
    links = json.loads(ip(None, "-j", "link", "show").stdout or "[]")
    return [link["ifname"] for link in links if str(link.get("ifalias", "")).startswith(prefix + ".")]


def bridge_ports(bridge):
    links = json.loads(ip(None, "-j", "link", "show", "master", bridge, check=False).stdout or "[]")
    return [link["ifname"] for link in links]


def check_root_address(bridge, cidr, alias):
    """Refuse to put cidr on bridge in the root namespace when that could disturb the machine.

    The bridge name must be free or be our bridge (tagged with alias) carrying this very address, and the
    range must overlap no route the root namespace has: adding an address inside a route the machine uses
    (e.g. the gateway's subnet on eth0) would cut it off. The default route is not counted (it covers
    everything); routes through our own bridge are ours.
    """
    links = {link["ifname"]: link for link in json.loads(ip(None, "-j", "-d", "link", "show").stdout or "[]")}
    if bridge in links:
        link = links[bridge]
        if link.get("ifalias") != alias or link.get("linkinfo", {}).get("info_kind") != "bridge":
            raise LabError(f"mgmt.bridge {bridge}: an interface of that name exists and is not a lab bridge; pick another name")
        have = {f"{a['local']}/{a['prefixlen']}" for a in _addr_info(None, bridge)}
        if have and cidr not in have:
            raise LabError(f"mgmt.address {cidr}: bridge {bridge} already carries {', '.join(sorted(have))} for another topology; use that")
    net = ipaddress.ip_interface(cidr).network
    routes = json.loads(ip(None, "-j", "-4", "route", "show", "table", "all").stdout or "[]")
    for route in routes:
        dst = route.get("dst", "")
        if dst in ("default", "") or route.get("dev") == bridge:
            continue
        try:
            other = ipaddress.ip_network(dst if "/" in dst else dst + "/32", strict=False)
        except ValueError:
            continue
        if other.version == net.version and other.overlaps(net):
            raise LabError(
                f"mgmt.address {cidr}: overlaps the root namespace's route {dst} dev {route.get('dev')} "
                f"(table {route.get('table', 'main')}); pick a free range (198.18.0.0/15 is meant for this)")


def is_lab_bridge(bridge, alias):
    """True when bridge exists in the root namespace and is one we made (never touch anything else)."""
    data = json.loads(ip(None, "-j", "-d", "link", "show", "dev", bridge, check=False).stdout or "[]")
    return bool(data) and data[0].get("ifalias") == alias and data[0].get("linkinfo", {}).get("info_kind") == "bridge"


def _addr_info(ns, ifname):
    data = json.loads(ip(ns, "-j", "-4", "addr", "show", "dev", ifname, check=False).stdout or "[]")
    return [a for link in data for a in link.get("addr_info", [])]


def addresses_in_netns(ns):
    """IPv4 addresses configured in a namespace (without prefix length)."""
    data = json.loads(ip(ns, "-j", "-4", "addr", "show", check=False).stdout or "[]")
    return {a["local"] for link in data for a in link.get("addr_info", [])}
