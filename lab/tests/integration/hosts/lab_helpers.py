"""Helpers of the lab engine tests: the test topology and what a topology leaves on the machine.

Two test runs may share the machine (a developer and a CI checkout): prefixes carry the pid, and
management addresses are picked among the free ones of the tests' range 198.18.1.90-99.
"""
import os

from anycast_lab.hosts import net
from anycast_lab.hosts.host import nspawn_pids, overlay_mounts

PREFIX = f"anm-pt{os.getpid()}"
PREFIX2 = PREFIX + "b"  # a second topology in the same test


def free_mgmt_ips(count=2):
    """Addresses of the tests' range that no namespace uses right now."""
    used = net.addresses_in_netns(None).union(*(net.addresses_in_netns(ns) for ns in net.list_netns()))
    free = [ip for ip in (f"198.18.1.{i}" for i in range(90, 100)) if ip not in used]
    assert len(free) >= count, "the tests' mgmt range 198.18.1.90-99 is used up: is another test run stuck?"
    return free[:count]


def spec_data(prefix=PREFIX, mgmt_ip=None, bird_config=None):
    """One host and one peer on segment lan; the peer serves HTTP (and BIRD when a config is given)."""
    mgmt_ip = mgmt_ip or free_mgmt_ips(1)[0]
    services = [{"name": "web", "kind": "http", "port": 8080, "body": "peer says hi\n"}]
    if bird_config:
        services.append({"name": "rs", "kind": "bird", "config": bird_config})
    return {
        "prefix": prefix,
        "mgmt": {"bridge": "anm-mgmt", "address": "198.18.1.1/24"},
        "segments": ["lan"],
        "nodes": [
            {"name": "h1", "kind": "host", "mgmt_ip": mgmt_ip, "groups": ["nva"],
             "interfaces": [{"name": "eth1", "segment": "lan", "address": "10.10.2.4/24"}],
             "sysctls": {"net.ipv4.ip_forward": 1}},
            {"name": "peer", "kind": "netns",
             "interfaces": [{"name": "eth0", "segment": "lan", "address": "10.10.2.10/24"}],
             "lo_addresses": ["10.250.0.10/32"],
             "routes": [{"to": "10.99.0.0/16", "via": "10.10.2.4"}],
             "services": services},
        ],
    }


def leftovers(prefix=PREFIX):
    """Everything of a topology still on the machine, by kind; empty lists when it is gone."""
    return {
        "netns": net.list_netns(prefix),
        "root_links": net.root_links_with_alias(prefix),
        "overlays": overlay_mounts(prefix),
        "nspawn": nspawn_pids(prefix),
    }


NOTHING = {"netns": [], "root_links": [], "overlays": [], "nspawn": []}
