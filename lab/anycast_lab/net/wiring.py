"""Layer 3 of the lab outside the NVAs: the regions' VNet fabrics, the ExpressRoute edge, on-premises.

Azure's VNet is routed, not switched: every NIC talks to the platform's gateway (.1 of its subnet),
which answers ARP for everything. The fabric namespace plays that platform for a region (hub and
peered spoke): one port per NIC with the subnet's gateway address, a host route to the NIC's address
(`peer`) and proxy ARP. Namespaces and veths come from the host machinery's primitives.
"""
import ipaddress

from ..hosts import net
from ..hosts.util import run
from . import birdconf, plan


def sysctl(ns, *settings):
    run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w"] + list(settings))


def gateway(nic, region):
    """The Azure gateway address (.1) of the NIC's subnet."""
    prefix = next(cidr for vnet, name, cidr in region.subnets if (vnet, name) == (nic.vnet, nic.subnet))
    return ipaddress.ip_network(prefix), str(ipaddress.ip_network(prefix).network_address + 1)


def fabric_port(region, nic):
    """The fabric's side of a NIC's link (the NIC's own side is set up by whoever owns the VM)."""
    fab = region.fabric_ns
    _net, gw = gateway(nic, region)
    net.ip(fab, "addr", "replace", gw, "peer", f"{nic.ip}/32", "dev", nic.port)
    sysctl(fab, f"net.ipv4.conf.{nic.port}.proxy_arp=1", f"net.ipv4.conf.{nic.port}.rp_filter=0")


def vm_side(ns, ifname, region, nic):
    """A plain-namespace VM's NIC: its address in the subnet and the Azure gateway as default route."""
    subnet, gw = gateway(nic, region)
    net.add_address(ns, ifname, f"{nic.ip}/{subnet.prefixlen}")
    net.ip(ns, "route", "replace", "default", "via", gw, "dev", ifname)


def fabric(region):
    """The region's fabric namespace: Route Server addresses, the ExpressRoute gateway link, routing policy."""
    fab = region.fabric_ns
    net.ensure_netns(fab)
    sysctl(fab, "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0")
    for address in region.rs_ips:
        net.add_address(fab, "lo", f"{address}/32")
    for rule in (1000, 1001):
        # The speakers' kernel tables (Route Server instance 0, then 1) hold the routes learned over BGP.
        net.ip(fab, "rule", "del", "pref", str(rule), check=False)
        net.ip(fab, "rule", "add", "pref", str(rule), "lookup", str(birdconf.kernel_table(rule - 1000)))


def edge_and_onprem():
    """ExpressRoute edge and on-premises router, their links to the regions, the client LAN."""
    for ns in (plan.EDGE_NS, plan.ONPREM_NS, plan.CLIENT_NS):
        net.ensure_netns(ns)
    for ns in (plan.EDGE_NS, plan.ONPREM_NS):
        sysctl(ns, "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0")
    # ECMP on-premises spreads flows by ports too, as a router hashing on 5-tuples would.
    sysctl(plan.ONPREM_NS, "net.ipv4.fib_multipath_hash_policy=1")
    for region in plan.REGIONS:
        er_if, op_if = f"er-{region.short}", f"op-{region.short}"
        net.ensure_veth(region.fabric_ns, "gw-er", plan.EDGE_NS, er_if, f"{plan.PREFIX}.er")
        prefixlen = ipaddress.ip_network(region.er_link).prefixlen
        for instance in (0, 1):
            net.add_address(region.fabric_ns, "gw-er", f"{region.er_addr(instance)}/{prefixlen}")
        net.add_address(plan.EDGE_NS, er_if, f"{region.er_addr('edge')}/{prefixlen}")
        net.ensure_veth(plan.EDGE_NS, op_if, plan.ONPREM_NS, er_if, f"{plan.PREFIX}.er")
        prefixlen = ipaddress.ip_network(region.onprem_link).prefixlen
        net.add_address(plan.EDGE_NS, op_if, f"{region.onprem_addr('edge')}/{prefixlen}")
        net.add_address(plan.ONPREM_NS, er_if, f"{region.onprem_addr('onprem')}/{prefixlen}")
        # The edge keeps each region's connection apart: traffic follows the table of the link it came in on.
        table = str(birdconf.edge_table(region))
        for ifname in (er_if, op_if):
            net.ip(plan.EDGE_NS, "rule", "del", "iif", ifname, check=False)
            net.ip(plan.EDGE_NS, "rule", "add", "iif", ifname, "lookup", table)
    net.ensure_veth(plan.ONPREM_NS, "lan", plan.CLIENT_NS, "eth0", f"{plan.PREFIX}.client")
    lan = ipaddress.ip_network(plan.CLIENT_NET)
    net.add_address(plan.ONPREM_NS, "lan", f"{plan.CLIENT_GW}/{lan.prefixlen}")
    net.add_address(plan.CLIENT_NS, "eth0", f"{plan.CLIENT_IP}/{lan.prefixlen}")
    net.ip(plan.CLIENT_NS, "route", "replace", "default", "via", plan.CLIENT_GW)
