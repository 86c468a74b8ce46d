"""Topology spec: load a plain YAML/JSON file and check every field before anything is created.

Errors name the field (`nodes[1] (h2).interfaces[0].segment: ...`) so a typo is fixed in one go.
See README.md in this directory for the format.
"""

import ipaddress
import os
import re
from dataclasses import dataclass, field

import yaml

from .util import LabError

PREFIX_RE = re.compile(r"^an[a-z]-[a-z0-9_-]{1,30}$")  # anm-<scenario>, anl-...: cleanup by prefix only ever matches lab names
NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")        # node and segment names double as host names
IFNAME_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9_-]{0,14}$")  # kernel limit: 15 characters
SYSCTL_RE = re.compile(r"^net\.[a-z0-9_.-]+$")
MGMT_IF = "mgmt0"
KINDS = ("host", "netns")
SERVICE_FIELDS = {"bird": ("config",), "http": ("port", "body", "bind", "status"), "command": ("argv",)}
SERVICE_KINDS = tuple(SERVICE_FIELDS)


@dataclass
class Interface:
    name: str
    segment: str
    addresses: list


@dataclass
class Route:
    to: str
    via: list
    dev: str = None
    metric: int = None


@dataclass
class Service:
    name: str
    kind: str
    start: bool = True
    config: str = None      # bird
    port: int = 80          # http
    body: str = ""
    bind: str = "0.0.0.0"
    status: int = 200
    argv: list = None       # command


@dataclass
class Node:  # pylint: disable=too-many-instance-attributes  # a plain record of the spec
    name: str
    kind: str
    mgmt_ip: str = None
    interfaces: list = field(default_factory=list)
    lo_addresses: list = field(default_factory=list)
    routes: list = field(default_factory=list)
    sysctls: dict = field(default_factory=dict)
    services: list = field(default_factory=list)
    groups: list = field(default_factory=list)
    vars: dict = field(default_factory=dict)


@dataclass
class Spec:
    prefix: str
    mgmt_bridge: str = None
    mgmt_address: str = None
    segments: list = field(default_factory=list)
    nodes: list = field(default_factory=list)

    def node(self, name):
        for node in self.nodes:
            if node.name == name:
                return node
        raise LabError(f"no node named {name!r} (nodes: {', '.join(n.name for n in self.nodes)})")

    @property
    def hosts(self):
        return [n for n in self.nodes if n.kind == "host"]

    @property
    def mgmt_prefixlen(self):
        return ipaddress.ip_interface(self.mgmt_address).network.prefixlen


def load(path):
    """Read and validate a spec file; relative paths in it (BIRD configs) are taken from the file's directory."""
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as exc:
        raise LabError(f"cannot read topology spec {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise LabError(f"topology spec {path} is not valid YAML/JSON: {exc}") from exc
    try:
        return parse(data, base_dir=os.path.dirname(os.path.abspath(path)))
    except LabError as exc:
        raise LabError(f"{path}: {exc}") from exc


def parse(data, base_dir="."):
    """Validate a spec given as Python data; returns a Spec."""
    c = _Checker(base_dir)
    return c.spec(data)


def to_data(spec):
    """Plain data (JSON-able) of a Spec, with absolute paths: saved in the state dir, parsed back by parse()."""
    nodes = []
    for n in spec.nodes:
        nodes.append({
            "name": n.name, "kind": n.kind, "mgmt_ip": n.mgmt_ip, "groups": n.groups, "vars": n.vars,
            "interfaces": [{"name": i.name, "segment": i.segment, "address": i.addresses} for i in n.interfaces],
            "lo_addresses": n.lo_addresses, "sysctls": n.sysctls,
            "routes": [{k: v for k, v in (("to", r.to), ("via", r.via), ("dev", r.dev), ("metric", r.metric)) if v not in (None, [])} for r in n.routes],
            "services": [{k: getattr(s, k) for k in ("name", "kind", "start") + SERVICE_FIELDS[s.kind]} for s in n.services],
        })
    data = {"prefix": spec.prefix, "segments": spec.segments, "nodes": nodes}
    if spec.mgmt_bridge:
        data["mgmt"] = {"bridge": spec.mgmt_bridge, "address": spec.mgmt_address}
    return data


class _Checker:
    """Walks the data once, keeping the path of the field being checked for error messages."""

    def __init__(self, base_dir):
        self.base_dir = base_dir

    @staticmethod
    def fail(where, msg):
        raise LabError(f"{where}: {msg}")

    def mapping(self, where, value, allowed, required=()):
        if not isinstance(value, dict):
            self.fail(where, f"must be a mapping, got {type(value).__name__}")
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            self.fail(where, f"unknown field(s) {', '.join(map(str, unknown))} (allowed: {', '.join(allowed)})")
        for key in required:
            if value.get(key) in (None, ""):
                self.fail(f"{where}.{key}", "is required")
        return value

    def listing(self, where, value):
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(where, f"must be a list, got {type(value).__name__}")
        return value

    def match(self, where, value, regex, what):
        if not isinstance(value, str) or not regex.match(value):
            self.fail(where, f"{value!r} is not a valid {what} (pattern {regex.pattern})")
        return value

    def cidr(self, where, value):
        if not isinstance(value, str) or "/" not in value:
            self.fail(where, f"{value!r} must be an IPv4 address with prefix length, e.g. 10.10.2.4/24")
        try:
            iface = ipaddress.IPv4Interface(value)
        except ValueError as exc:
            self.fail(where, f"{value!r} is not an IPv4 address/prefix: {exc}")
        return str(iface)

    def address(self, where, value):
        try:
            return str(ipaddress.IPv4Address(value))
        except ValueError:
            self.fail(where, f"{value!r} is not an IPv4 address")
        return None

    def spec(self, data):
        self.mapping("spec", data, ("prefix", "mgmt", "segments", "nodes"), required=("prefix",))
        spec = Spec(prefix=self.match("prefix", data["prefix"], PREFIX_RE, "prefix (anm-<scenario> or anl-<name>)"))
        if data.get("mgmt") is not None:
            mgmt = self.mapping("mgmt", data["mgmt"], ("bridge", "address"), required=("bridge", "address"))
            spec.mgmt_bridge = self.match("mgmt.bridge", mgmt["bridge"], IFNAME_RE, "interface name")
            spec.mgmt_address = self.cidr("mgmt.address", mgmt["address"])
        names = set()
        for i, seg in enumerate(self.listing("segments", data.get("segments"))):
            self.match(f"segments[{i}]", seg, NAME_RE, "segment name")
            if seg in names:
                self.fail(f"segments[{i}]", f"duplicate name {seg!r}")
            names.add(seg)
            spec.segments.append(seg)
        for i, raw in enumerate(self.listing("nodes", data.get("nodes"))):
            node = self.node(f"nodes[{i}]", raw, spec)
            if node.name in names:
                self.fail(f"nodes[{i}].name", f"{node.name!r} is already used by another node or segment")
            names.add(node.name)
            spec.nodes.append(node)
        self.unique_mgmt_ips(spec)
        return spec

    def node(self, where, raw, spec):
        self.mapping(where, raw, ("name", "kind", "mgmt_ip", "interfaces", "lo_addresses", "routes", "sysctls", "services", "groups", "vars"),
                     required=("name", "kind"))
        name = self.match(f"{where}.name", raw["name"], NAME_RE, "node name")
        where = f"{where} ({name})"
        if raw["kind"] not in KINDS:
            self.fail(f"{where}.kind", f"{raw['kind']!r} is not one of {', '.join(KINDS)}")
        node = Node(name=name, kind=raw["kind"])
        if raw.get("mgmt_ip") is not None:
            node.mgmt_ip = self.mgmt_ip(f"{where}.mgmt_ip", raw["mgmt_ip"], spec)
        elif node.kind == "host":
            self.fail(f"{where}.mgmt_ip", "is required for a host (the controller reaches it over SSH there)")
        for j, iface in enumerate(self.listing(f"{where}.interfaces", raw.get("interfaces"))):
            node.interfaces.append(self.interface(f"{where}.interfaces[{j}]", iface, spec, node))
        node.lo_addresses = [self.cidr(f"{where}.lo_addresses[{j}]", a) for j, a in enumerate(self.listing(f"{where}.lo_addresses", raw.get("lo_addresses")))]
        node.routes = [self.route(f"{where}.routes[{j}]", r) for j, r in enumerate(self.listing(f"{where}.routes", raw.get("routes")))]
        node.sysctls = self.sysctls(f"{where}.sysctls", raw.get("sysctls") or {})
        services = self.listing(f"{where}.services", raw.get("services"))
        if services and node.kind == "host":
            self.fail(f"{where}.services", "hosts run their daemons under their own systemd (use a role); services are for kind netns")
        for j, svc in enumerate(services):
            node.services.append(self.service(f"{where}.services[{j}]", svc, node))
        if len({s.name for s in node.services}) != len(node.services):
            self.fail(f"{where}.services", "service names must be unique within a node")
        if node.kind == "netns" and (raw.get("groups") or raw.get("vars")):
            self.fail(where, "groups and vars are inventory settings, only for kind host")
        node.groups = [self.match(f"{where}.groups[{j}]", g, re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$"), "group name")
                       for j, g in enumerate(self.listing(f"{where}.groups", raw.get("groups")))]
        node.vars = raw.get("vars") or {}
        if not isinstance(node.vars, dict):
            self.fail(f"{where}.vars", "must be a mapping")
        return node

    def mgmt_ip(self, where, value, spec):
        if not spec.mgmt_address:
            self.fail(where, "needs a top-level mgmt section (bridge, address)")
        addr = ipaddress.IPv4Address(self.address(where, value))
        net = ipaddress.IPv4Interface(spec.mgmt_address)
        if addr not in net.network or addr in (net.network.network_address, net.network.broadcast_address, net.ip):
            self.fail(where, f"{addr} must be a free host address of the mgmt network {net.network} (not {net.ip}, the bridge's)")
        return str(addr)

    def interface(self, where, raw, spec, node):
        self.mapping(where, raw, ("name", "segment", "address"), required=("name", "segment"))
        name = self.match(f"{where}.name", raw["name"], IFNAME_RE, "interface name (<= 15 characters)")
        if name in ("lo", MGMT_IF) or any(i.name == name for i in node.interfaces):
            self.fail(f"{where}.name", f"{name!r} is reserved or already used on this node")
        if raw["segment"] not in spec.segments:
            self.fail(f"{where}.segment", f"unknown segment {raw['segment']!r} (segments: {', '.join(spec.segments) or 'none'})")
        addresses = raw.get("address") or []
        addresses = addresses if isinstance(addresses, list) else [addresses]
        return Interface(name=name, segment=raw["segment"], addresses=[self.cidr(f"{where}.address", a) for a in addresses])

    def route(self, where, raw):
        self.mapping(where, raw, ("to", "via", "dev", "metric"), required=("to",))
        to = raw["to"] if raw["to"] == "default" else str(ipaddress.IPv4Interface(self.cidr(f"{where}.to", raw["to"])).network)
        via = raw.get("via") or []
        via = [self.address(f"{where}.via", v) for v in (via if isinstance(via, list) else [via])]
        dev = raw.get("dev")
        if dev is not None:
            self.match(f"{where}.dev", dev, IFNAME_RE, "interface name")
        if not via and not dev:
            self.fail(where, "needs via (one address, or a list for ECMP) or dev")
        metric = raw.get("metric")
        if metric is not None and (not isinstance(metric, int) or metric < 0):
            self.fail(f"{where}.metric", "must be a non-negative integer")
        return Route(to=to, via=via, dev=dev, metric=metric)

    def sysctls(self, where, raw):
        if not isinstance(raw, dict):
            self.fail(where, "must be a mapping of sysctl name to value")
        for key, value in raw.items():
            if not isinstance(key, str) or not SYSCTL_RE.match(key):
                self.fail(f"{where}.{key}", "only net.* sysctls belong to a namespace; anything else would change the whole machine")
            if not isinstance(value, (str, int)) or isinstance(value, bool):
                self.fail(f"{where}.{key}", f"value {value!r} must be a number or string")
        return {k: str(v) for k, v in raw.items()}

    def service(self, where, raw, node):
        self.mapping(where, raw, ("name", "kind", "start", "config", "port", "body", "bind", "status", "argv"), required=("name", "kind"))
        svc = Service(name=self.match(f"{where}.name", raw["name"], NAME_RE, "service name"), kind=raw["kind"])
        where = f"{where} ({svc.name})"
        if svc.kind not in SERVICE_KINDS:
            self.fail(f"{where}.kind", f"{svc.kind!r} is not one of {', '.join(SERVICE_KINDS)}")
        allowed = set(SERVICE_FIELDS[svc.kind]) | {"name", "kind", "start"}
        extra = sorted(set(raw) - allowed)
        if extra:
            self.fail(where, f"field(s) {', '.join(extra)} do not apply to a {svc.kind} service")
        svc.start = bool(raw.get("start", True))
        if svc.kind == "bird":
            if not raw.get("config"):
                self.fail(f"{where}.config", "is required (path of the BIRD config, relative to the spec file)")
            # Its content is checked by `up` (bird -p) before anything is made; `down` must work even when it is gone.
            svc.config = os.path.join(self.base_dir, raw["config"])
        elif svc.kind == "http":
            svc.port = raw.get("port", 80)
            if not isinstance(svc.port, int) or not 0 < svc.port < 65536:
                self.fail(f"{where}.port", f"{svc.port!r} is not a TCP port")
            svc.body = str(raw.get("body", f"{node.name}\n"))
            svc.bind = self.address(f"{where}.bind", raw.get("bind", "0.0.0.0"))
            svc.status = raw.get("status", 200)
            if not isinstance(svc.status, int) or not 100 <= svc.status < 600:
                self.fail(f"{where}.status", f"{svc.status!r} is not an HTTP status code")
        else:
            argv = raw.get("argv")
            if not isinstance(argv, list) or not argv or not all(isinstance(a, (str, int)) for a in argv):
                self.fail(f"{where}.argv", "must be a non-empty list of strings")
            svc.argv = [str(a) for a in argv]
        return svc

    def unique_mgmt_ips(self, spec):
        seen = {}
        for i, node in enumerate(spec.nodes):
            if node.mgmt_ip and node.mgmt_ip in seen:
                self.fail(f"nodes[{i}] ({node.name}).mgmt_ip", f"{node.mgmt_ip} is also used by {seen[node.mgmt_ip]}")
            if node.mgmt_ip:
                seen[node.mgmt_ip] = node.name
