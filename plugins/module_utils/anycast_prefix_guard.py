# -*- coding: utf-8 -*-
# Copyright: (c) 2026, anycast.nva maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Guard rail: the anycast /32 must not overlap a VNet (its system routes beat BGP) or on-premises."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.anycast.nva.plugins.module_utils.errors import AnycastError
from ansible_collections.anycast.nva.plugins.module_utils.validation import anycast_prefix, ipv4_network, overlaps, resource_name
from ansible_collections.anycast.nva.plugins.module_utils.vnet import address_prefixes


# The options of anycast_prefix_guard (the module adds the common Azure options); documented in the module.
ARGUMENT_SPEC = dict(
    prefix=dict(type="str", required=True),
    virtual_networks=dict(type="list", elements="dict", default=[], options=dict(
        name=dict(type="str", required=True),
        resource_group=dict(type="str"),
    )),
    resource_group=dict(type="str"),
    on_premises_prefixes=dict(type="list", elements="str", default=[]),
)


def validate(params):
    """Every local check, before the first call to Azure. Returns prefix (IPv4Network, a /32) and
    on_premises_prefixes (a list of IPv4Network) parsed."""
    prefix = anycast_prefix(params["prefix"], "prefix")
    on_prem = [ipv4_network(p, "on_premises_prefixes[%d]" % i) for i, p in enumerate(params["on_premises_prefixes"] or [])]
    for index, vnet in enumerate(params["virtual_networks"] or []):
        resource_name(vnet["name"], "virtual_networks[%d].name" % index)
    return dict(prefix=prefix, on_premises_prefixes=on_prem)


def check(session, params):
    """anycast_prefix_guard: read-only; fails naming the option whose value conflicts."""
    parsed = validate(params)
    prefix, on_prem = parsed["prefix"], parsed["on_premises_prefixes"]
    clash = overlaps(prefix, [("on-premises", p) for p in on_prem])
    if clash:
        raise AnycastError("prefix", "%s overlaps the on-premises prefix %s (on_premises_prefixes)" % (prefix, clash[0][1]), code="PrefixOverlap")
    checked = []
    for index, vnet in enumerate(params["virtual_networks"] or []):
        rg = vnet.get("resource_group") or params["resource_group"]
        if not rg:
            raise AnycastError("virtual_networks[%d].resource_group" % index, "required when the module's resource_group is not set")
        space = address_prefixes(session, "virtual_networks[%d]" % index, rg, vnet["name"])
        clash = overlaps(prefix, [(vnet["name"], p) for p in space])
        if clash:
            raise AnycastError("prefix", "%s overlaps %s of VNet %s (virtual_networks[%d]); VNet system routes would win over the BGP /32"
                               % (prefix, clash[0][1], vnet["name"], index), code="PrefixOverlap")
        checked.append(dict(name=vnet["name"], resource_group=rg, address_prefixes=space))
    return dict(changed=False, prefix=str(prefix), virtual_networks=checked, on_premises_prefixes=[str(p) for p in on_prem])
