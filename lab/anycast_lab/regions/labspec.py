"""The lab rendered for its two engines: the host machinery's topology spec and the ARM emulator's seed.

Both are derived from plan.py, so an address is written once. Every NIC gets an L2 segment of its own
between the VM and the region's fabric (Azure has no shared L2: each NIC talks to the platform only).
"""
import ipaddress
import json
import os
import sys

import yaml

from ..paths import lab_dir
from . import convergence, plan, routers

MGMT_BRIDGE = "anl-mgmt"
MGMT_ADDRESS = "198.18.0.1/24"
# The backends answer every request with this line: which region and which host served it.
BACKEND_BODY = "{region} {host}\n"


def _segment(region, vm):
    return f"{region.short}-s-{vm.split('-', 1)[1] if vm.startswith(region.short + '-') else vm}"


def _cidr(address, prefix):
    return f"{address}/{ipaddress.ip_network(prefix).prefixlen}"


def _subnet_prefix(region, nic):
    return next(cidr for vnet, name, cidr in region.subnets if (vnet, name) == (nic.vnet, nic.subnet))


def gateway(region, nic):
    """The Azure default gateway (.1) of a NIC's subnet."""
    return str(ipaddress.ip_network(_subnet_prefix(region, nic)).network_address + 1)


def _region_nodes(region):
    nodes, segments = [], []
    fabric_ifs, sysctls = [], {"net.ipv4.ip_forward": 1, "net.ipv4.conf.all.rp_filter": 0, "net.ipv4.conf.default.rp_filter": 0}
    sync_seg = f"{region.short}-sync"
    segments.append(sync_seg)
    sync_prefix = next(cidr for _vnet, name, cidr in region.subnets if name == "snet-sync")
    for nic in region.nics:
        seg = _segment(region, nic.vm)
        segments.append(seg)
        # The fabric side gets its gateway address later (wiring.py): a /32 with the NIC as peer.
        fabric_ifs.append({"name": nic.port, "segment": seg})
        sysctls[f"net.ipv4.conf.{nic.port}.proxy_arp"] = 1
        sysctls[f"net.ipv4.conf.{nic.port}.rp_filter"] = 0
        nva = next((item for item in region.nvas if item[0] == nic.vm), None)
        # Hosts have mgmt0 already: their Azure NIC is eth1, as the second NIC of a VM would be.
        vm_if = {"name": "eth1" if nva else "eth0", "segment": seg, "address": _cidr(nic.ip, _subnet_prefix(region, nic))}
        route = {"to": "default", "via": gateway(region, nic)}
        if nva:
            _host, _ip, sync_ip, mgmt_ip = nva
            nodes.append({"name": nic.vm, "kind": "host", "mgmt_ip": mgmt_ip, "groups": ["nva", region.name],
                          "interfaces": [vm_if, {"name": "eth2", "segment": sync_seg, "address": _cidr(sync_ip, sync_prefix)}],
                          "routes": [route]})
        else:
            node = {"name": nic.vm, "kind": "netns", "interfaces": [vm_if], "routes": [route]}
            if nic.subnet == "snet-app":
                node["services"] = [{"name": "web", "kind": "http", "port": plan.BACKEND_PORT,
                                     "body": BACKEND_BODY.format(region=region.name, host=nic.vm)}]
            nodes.append(node)
    er_seg = f"{region.short}-s-er"
    segments.append(er_seg)
    fabric_ifs.append({"name": "gw-er", "segment": er_seg, "address": [_cidr(region.er_addr(i), region.er_link) for i in (0, 1)]})
    nodes.insert(0, {"name": region.fabric_ns.split(".", 1)[1], "kind": "netns", "interfaces": fabric_ifs,
                     "lo_addresses": [f"{ip}/32" for ip in region.rs_ips], "sysctls": sysctls,
                     "services": [{"name": f"rs{i}", "kind": "bird", "config": routers.conf_rel(routers.speaker_name(region, i))} for i in (0, 1)]})
    return nodes, segments


def spec(nvas=None, base=None):
    """The topology spec (host machinery format, see lab/anycast_lab/hosts/README.md) for `nvas` NVAs per region (None: the lab's size).

    `base`: the lab dir the convergence delay file is in (default: the running lab's)."""
    nodes, segments = [], []
    edge_ifs, onprem_ifs = [], []
    forwarding = {"net.ipv4.ip_forward": 1, "net.ipv4.conf.all.rp_filter": 0, "net.ipv4.conf.default.rp_filter": 0}
    for region in plan.regions(nvas):
        more_nodes, more_segments = _region_nodes(region)
        nodes += more_nodes
        segments += more_segments
        op_seg = f"{region.short}-s-op"
        segments.append(op_seg)
        edge_ifs += [{"name": f"er-{region.short}", "segment": f"{region.short}-s-er", "address": _cidr(region.er_addr("edge"), region.er_link)},
                     {"name": f"op-{region.short}", "segment": op_seg, "address": _cidr(region.onprem_addr("edge"), region.onprem_link)}]
        onprem_ifs.append({"name": f"er-{region.short}", "segment": op_seg, "address": _cidr(region.onprem_addr("onprem"), region.onprem_link)})
    segments.append("lan")
    onprem_ifs.append({"name": "lan", "segment": "lan", "address": _cidr(plan.CLIENT_GW, plan.CLIENT_NET)})
    nodes += [
        # The relay that delays what the edge tells on-premises (convergence.py) starts before the edge's BIRD.
        {"name": "er", "kind": "netns", "interfaces": edge_ifs, "sysctls": forwarding,
         "services": [{"name": "convergence", "kind": "command",
                       "argv": [sys.executable, "-m", "anycast_lab.regions.convergence",
                                "--delay-file", convergence.delay_file(base or lab_dir())]},
                      {"name": "bird", "kind": "bird", "config": routers.conf_rel("er")}]},
        # ECMP on-premises hashes on ports too, as a router spreading flows by 5-tuple would.
        {"name": "onprem", "kind": "netns", "interfaces": onprem_ifs, "sysctls": dict(forwarding, **{"net.ipv4.fib_multipath_hash_policy": 1}),
         "services": [{"name": "bird", "kind": "bird", "config": routers.conf_rel("onprem")}]},
        {"name": "client", "kind": "netns", "interfaces": [{"name": "eth0", "segment": "lan", "address": _cidr(plan.CLIENT_IP, plan.CLIENT_NET)}],
         "routes": [{"to": "default", "via": plan.CLIENT_GW}]},
    ]
    return {"prefix": plan.PREFIX, "mgmt": {"bridge": MGMT_BRIDGE, "address": MGMT_ADDRESS}, "segments": segments, "nodes": nodes}


def seed(nvas=None):
    """The ARM emulator's seed (lab/anycast_lab/arm/seed.py format): what exists in Azure before the playbooks run.

    One NIC per NVA: `nvas` per region (None: the lab's size).

    Route Servers exist (creating one takes Azure 20+ minutes; teams deploy them with their landing zone),
    with branch-to-branch off and no peers; NVA NICs have IP forwarding off. The playbooks fix both.
    """
    data = {"tenant_id": plan.TENANT_ID, "subscription_id": plan.SUBSCRIPTION_ID, "client_id": plan.CLIENT_ID,
            "client_secret": plan.CLIENT_SECRET, "resource_groups": [], "virtual_networks": [], "network_interfaces": [],
            "route_servers": []}
    for region in plan.regions(nvas):
        group = region.resource_group
        data["resource_groups"].append({"name": group, "location": region.name})
        for vnet, space in ((region.hub_vnet, region.hub_prefix), (region.spoke_vnet, region.spoke_prefix)):
            data["virtual_networks"].append({"resource_group": group, "name": vnet, "address_prefixes": [space],
                                             "subnets": [{"name": name, "address_prefix": cidr} for net, name, cidr in region.subnets if net == vnet]})
        for nic in region.nics:
            data["network_interfaces"].append({"resource_group": group, "name": nic.name, "vnet": nic.vnet, "subnet": nic.subnet,
                                               "private_ip": nic.ip, "enable_ip_forwarding": nic.forwarding})
        data["route_servers"].append({"resource_group": group, "name": region.route_server, "vnet": region.hub_vnet,
                                      "allow_branch_to_branch": False, "routing_ready": True})
    return data


def write(directory, nvas=None):
    """Write the topology spec (lab.yml), the seed (seed.json) and the fixed BIRD configs into `directory`."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "lab.yml"), "w", encoding="utf-8") as handle:
        yaml.safe_dump(spec(nvas, directory), handle, sort_keys=False)
    with open(os.path.join(directory, "seed.json"), "w", encoding="utf-8") as handle:
        json.dump(seed(nvas), handle, indent=1)
    for name, text in routers.fixed_configs().items():
        routers.write_config(name, text, directory)
