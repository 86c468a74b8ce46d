"""What the topology spec cannot say: the Azure-style gateway ports of the fabric and the routing policy.

Azure's VNet is routed, not switched: every NIC talks to the platform's gateway (.1 of its subnet),
which answers ARP for everything. Each fabric port therefore holds the gateway address as a /32
with the NIC's address as peer (a host route to the NIC) and proxy ARP (set in the spec). The routes
the Route Server instances learn live in their own kernel tables, consulted in instance order; the
ExpressRoute edge keeps each region's connection apart by incoming link.
"""
from ..hosts import net
from . import birdconf, labspec, plan

FABRIC_RULE_PREF = 1000


def _rule(ns, pref, *selector_and_table):
    """(Re)place one policy rule by its preference, so reruns do not stack duplicates."""
    while net.ip(ns, "rule", "del", "pref", str(pref), check=False).returncode == 0:
        pass
    net.ip(ns, "rule", "add", "pref", str(pref), *selector_and_table)


def apply(nvas=None):
    """Gateway ports and rules for a lab of `nvas` NVAs per region (None: the lab's size)."""
    for region in plan.regions(nvas):
        for nic in region.nics:
            net.ip(region.fabric_ns, "addr", "replace", labspec.gateway(region, nic), "peer", f"{nic.ip}/32", "dev", nic.port)
        for instance in (0, 1):
            _rule(region.fabric_ns, FABRIC_RULE_PREF + instance, "lookup", str(birdconf.kernel_table(instance)))
    for index, region in enumerate(plan.REGIONS):
        for offset, ifname in enumerate((f"er-{region.short}", f"op-{region.short}")):
            _rule(plan.EDGE_NS, 100 + 10 * index + offset, "iif", ifname, "lookup", str(birdconf.edge_table(region)))
