"""Topology spec validation: every bad field is refused with an error that names it, before anything is created."""
import copy
import ipaddress

import pytest

from anycast_lab.hosts import LabError
from anycast_lab.hosts import spec as spec_mod
from anycast_lab.hosts.net import root_veth_name

GOOD = {
    "prefix": "anm-unit",
    "mgmt": {"bridge": "anm-mgmt", "address": "198.18.1.1/24"},
    "segments": ["lan"],
    "nodes": [
        {"name": "h1", "kind": "host", "mgmt_ip": "198.18.1.10", "groups": ["nva"],
         "interfaces": [{"name": "eth1", "segment": "lan", "address": "10.10.2.4/24"}],
         "routes": [{"to": "default", "via": ["10.10.2.1", "10.10.2.2"]}],
         "sysctls": {"net.ipv4.ip_forward": 1}},
        {"name": "peer", "kind": "netns",
         "interfaces": [{"name": "eth0", "segment": "lan", "address": ["10.10.2.10/24", "10.10.2.11/24"]}],
         "services": [{"name": "web", "kind": "http", "port": 8080},
                      {"name": "sink", "kind": "command", "argv": ["sleep", "infinity"]}]},
    ],
}


def with_change(path, value):
    """GOOD with one field replaced (path: list of keys/indexes; value None deletes the field)."""
    data = copy.deepcopy(GOOD)
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is None:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


def test_good_spec_parses_and_round_trips():
    spec = spec_mod.parse(GOOD)
    assert [n.name for n in spec.hosts] == ["h1"]
    assert spec.node("h1").routes[0].via == ["10.10.2.1", "10.10.2.2"]
    assert spec.node("peer").interfaces[0].addresses == ["10.10.2.10/24", "10.10.2.11/24"]
    assert spec.node("peer").services[0].body == "peer\n"  # default body names the node
    assert spec_mod.parse(spec_mod.to_data(spec)) == spec


@pytest.mark.parametrize("path, value, message", [
    (["prefix"], "nva", r"^prefix: 'nva' is not a valid prefix"),
    (["prefix"], "anm-a.b", r"^prefix: "),
    (["mgmt", "address"], "198.18.1.1", r"^mgmt\.address: '198\.18\.1\.1' must be an IPv4 address with prefix length"),
    (["mgmt", "bridge"], "a-bridge-name-too-long", r"^mgmt\.bridge: "),
    (["segments"], ["lan", "lan"], r"^segments\[1\]: duplicate name 'lan'"),
    (["nodes", 0, "kind"], "vm", r"^nodes\[0\] \(h1\)\.kind: 'vm' is not one of host, netns"),
    (["nodes", 0, "mgmt_ip"], None, r"^nodes\[0\] \(h1\)\.mgmt_ip: is required for a host"),
    (["nodes", 0, "mgmt_ip"], "198.18.2.10", r"^nodes\[0\] \(h1\)\.mgmt_ip: 198\.18\.2\.10 must be a free host address of the mgmt network"),
    (["nodes", 0, "mgmt_ip"], "198.18.1.1", r"^nodes\[0\] \(h1\)\.mgmt_ip: "),
    (["nodes", 0, "interfaces", 0, "segment"], "lna", r"^nodes\[0\] \(h1\)\.interfaces\[0\]\.segment: unknown segment 'lna' \(segments: lan\)"),
    (["nodes", 0, "interfaces", 0, "name"], "a-very-long-ifname", r"^nodes\[0\] \(h1\)\.interfaces\[0\]\.name: .*<= 15 characters"),
    (["nodes", 0, "interfaces", 0, "name"], "mgmt0", r"^nodes\[0\] \(h1\)\.interfaces\[0\]\.name: 'mgmt0' is reserved"),
    (["nodes", 0, "interfaces", 0, "address"], "10.10.2.300/24", r"^nodes\[0\] \(h1\)\.interfaces\[0\]\.address: "),
    (["nodes", 0, "routes", 0, "via"], None, r"^nodes\[0\] \(h1\)\.routes\[0\]: needs via"),
    (["nodes", 0, "sysctls"], {"kernel.pid_max": 1}, r"^nodes\[0\] \(h1\)\.sysctls\.kernel\.pid_max: only net\.\* sysctls"),
    (["nodes", 0, "services"], [{"name": "web", "kind": "http"}], r"^nodes\[0\] \(h1\)\.services: hosts run their daemons"),
    (["nodes", 0, "colour"], "blue", r"^nodes\[0\]: unknown field\(s\) colour"),
    (["nodes", 1, "name"], "lan", r"^nodes\[1\]\.name: 'lan' is already used"),
    (["nodes", 1, "mgmt_ip"], "198.18.1.10", r"^nodes\[1\] \(peer\)\.mgmt_ip: 198\.18\.1\.10 is also used by h1"),
    (["nodes", 1, "services", 0, "port"], 70000, r"^nodes\[1\] \(peer\)\.services\[0\] \(web\)\.port: 70000 is not a TCP port"),
    (["nodes", 1, "services", 0, "config"], "x.conf", r"^nodes\[1\] \(peer\)\.services\[0\] \(web\): field\(s\) config do not apply to a http service"),
    (["nodes", 1, "services", 1, "argv"], [], r"^nodes\[1\] \(peer\)\.services\[1\] \(sink\)\.argv: must be a non-empty list"),
    (["nodes", 1, "services", 1, "kind"], "docker", r"^nodes\[1\] \(peer\)\.services\[1\] \(sink\)\.kind: 'docker' is not one of bird, http, command"),
])
def test_bad_field_is_named(path, value, message):
    with pytest.raises(LabError, match=message):
        spec_mod.parse(with_change(path, value))


def test_bird_config_is_taken_from_the_spec_dir(tmp_path):
    data = with_change(["nodes", 1, "services"], [{"name": "rs", "kind": "bird", "config": "rs.conf"}])
    assert spec_mod.parse(data, base_dir=str(tmp_path)).node("peer").services[0].config == str(tmp_path / "rs.conf")


def test_spec_file_errors_name_the_file(tmp_path):
    path = tmp_path / "topology.yml"
    path.write_text("prefix: anm-x\nnodes: [{name: h1, kind: host}]\n")
    with pytest.raises(LabError, match=r"topology\.yml: nodes\[0\] \(h1\)\.mgmt_ip: "):
        spec_mod.load(str(path))
    path.write_text("prefix: [unclosed\n")
    with pytest.raises(LabError, match=r"is not valid YAML/JSON"):
        spec_mod.load(str(path))


def test_root_veth_names_fit_the_kernel_limit_and_differ():
    names = {root_veth_name("anm-conntrack_sync", f"nva{i}") for i in range(50)}
    assert len(names) == 50
    assert all(len(n) <= 15 for n in names)
    assert ipaddress.ip_interface(GOOD["mgmt"]["address"])  # the example range itself is valid
