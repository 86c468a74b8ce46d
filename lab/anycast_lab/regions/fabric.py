"""The VNet fabric's data-plane rules, rendered from ARM state.

Two Azure behaviours that bite in real deployments:
- a NIC without enableIPForwarding only sends from and receives for its own address: everything
  else is dropped by the platform (nftables in the region's fabric namespace, per NIC port);
- a subnet with a route table routes by its UDRs before the system and BGP routes (a policy rule
  per NIC port of that subnet; `throw` routes for the VNet address spaces keep VNet-local traffic
  on the system routes, as Azure's longest-prefix match would for the usual UDRs).
"""
import re
import subprocess

from . import plan

NFT_TABLE = "anl_fabric"
UDR_RULE_PREF = 500


def next_hops(region, prefix=f"{plan.ANYCAST_IP}/32"):
    """NVA addresses the region's VNet routes a prefix to (what Route Server learned and programmed)."""
    out = subprocess.run(["ip", "-n", region.fabric_ns, "route", "show", "table", "all", prefix],
                         capture_output=True, text=True, check=True).stdout
    return set(re.findall(r"via (\S+)", out))


def path(region, source=plan.CLIENT_IP, iif="gw-er", dest=plan.ANYCAST_IP):
    """The NVA address the region's fabric picks for a flow now (it hashes on addresses only)."""
    out = subprocess.run(["ip", "-n", region.fabric_ns, "route", "get", dest, "from", source, "iif", iif],
                         capture_output=True, text=True, check=True).stdout
    return re.search(r"via (\S+)", out).group(1)


def udr_table(region, nic):
    """Kernel table that holds the UDRs of one NIC port."""
    return 200 + region.nics.index(nic)


def nft_rules(region, view):
    """nftables script (one atomic transaction) dropping what NICs without IP forwarding may not pass."""
    lines = [f"table inet {NFT_TABLE} {{}}", f"delete table inet {NFT_TABLE}", f"table inet {NFT_TABLE} {{",
             "  chain forward {", "    type filter hook forward priority 0; policy accept;"]
    for nic in region.nics:
        if view.nic_forwarding(region.resource_group, nic.name):
            continue
        lines += [f"    # {nic.name} ({nic.ip}): enableIPForwarding off",
                  f'    iifname "{nic.port}" ip saddr != {nic.ip} counter drop',
                  f'    oifname "{nic.port}" ip daddr != {nic.ip} counter drop']
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


def _next_hop(region, hop_type, hop_ip):
    """`ip route` arguments for one UDR's next hop."""
    hop_type = (hop_type or "").lower()
    if hop_type == "virtualappliance":
        nic = next((item for item in region.nics if item.ip == hop_ip), None)
        # An appliance address nobody owns: Azure forwards into the void.
        return f"via {hop_ip} dev {nic.port} onlink" if nic else "blackhole"
    if hop_type == "vnetlocal":
        return "throw"
    if hop_type == "virtualnetworkgateway":
        return f"via {region.er_addr('edge')} dev gw-er onlink"
    # None drops; Internet has no way out of the lab.
    return "blackhole"


def udr_cleanup(region):
    """`ip -batch` lines removing every NIC port's UDR rule and table (some may not exist: run with -force)."""
    lines = []
    for nic in region.nics:
        lines += [f"rule del pref {UDR_RULE_PREF} iif {nic.port}", f"route flush table {udr_table(region, nic)}"]
    return "\n".join(lines) + "\n"


def udr_batch(region, view):
    """`ip -batch` lines that build every NIC port's UDR rule and table from ARM state (after udr_cleanup)."""
    lines = []
    for nic in region.nics:
        table = udr_table(region, nic)
        routes = view.subnet_routes(region.resource_group, nic.vnet, nic.subnet)
        if routes is None:
            continue
        lines.append(f"rule add pref {UDR_RULE_PREF} iif {nic.port} lookup {table}")
        for space in (region.hub_prefix, region.spoke_prefix):
            lines.append(f"route add throw {space} table {table}")
        for prefix, hop_type, hop_ip in routes:
            hop = _next_hop(region, hop_type, hop_ip)
            if hop in ("throw", "blackhole"):
                lines.append(f"route replace {hop} {prefix} table {table}")
            else:
                lines.append(f"route replace {prefix} {hop} table {table}")
    return "\n".join(lines) + "\n"
