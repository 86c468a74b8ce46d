# -*- coding: utf-8 -*-
# Copyright: (c) 2026, anycast.nva maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The network security group of the conntrack sync subnet: the sync port admitted only between the region's NVAs.

Two inbound rules of the module's own, by name: allow UDP to the port from the NVAs' sync addresses to those addresses
(priority), then deny UDP to the port from anywhere (priority + 1). Every other rule of the group, and every other
port, is left to the group's other rules and Azure's default rules (AllowVnetInBound at 65000 keeps SSH and the rest
of the VNet's traffic as it was). The group is associated with the sync subnet.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import functools
import ipaddress

from ansible_collections.anycast.nva.plugins.module_utils.arm import model, props
from ansible_collections.anycast.nva.plugins.module_utils.compare import result, same_id
from ansible_collections.anycast.nva.plugins.module_utils.errors import AnycastError
from ansible_collections.anycast.nva.plugins.module_utils.locations import normalised
from ansible_collections.anycast.nva.plugins.module_utils.subnet import put_reference, referenced
from ansible_collections.anycast.nva.plugins.module_utils.validation import ipv4_address, resource_name
from ansible_collections.anycast.nva.plugins.module_utils.vnet import vnet_of_subnet

ALLOW_RULE = "anycast-sync-allow"
DENY_RULE = "anycast-sync-deny"
# Azure's range of a security rule's priority (the deny rule takes priority + 1).
MIN_PRIORITY, MAX_PRIORITY = 100, 4096
# Azure supports no NSG on these subnets.
NO_NSG_SUBNETS = ("routeserversubnet", "gatewaysubnet")
KEY = "networkSecurityGroup"

# The options of sync_nsg (the module adds the common Azure options); documented in the module.
ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    resource_group=dict(type="str", required=True),
    location=dict(type="str"),
    subnet=dict(type="dict", required=True, options=dict(
        virtual_network=dict(type="str", required=True),
        name=dict(type="str", required=True),
        resource_group=dict(type="str"),
    )),
    nva_addresses=dict(type="list", elements="str", required=True),
    port=dict(type="int", default=3780),
    priority=dict(type="int", default=200),
    replace_nsg=dict(type="bool", default=False),
)


def validate(params):
    """Every local check, before the first call to Azure. Returns the NVA addresses as IPv4Address, in order."""
    resource_name(params["name"], "name")
    resource_name(params["subnet"]["virtual_network"], "subnet.virtual_network")
    resource_name(params["subnet"]["name"], "subnet.name")
    if params["subnet"]["name"].lower() in NO_NSG_SUBNETS:
        raise AnycastError("subnet.name", "Azure supports no network security group on %s; name the NVAs' sync subnet" % params["subnet"]["name"])
    if not params["nva_addresses"]:
        raise AnycastError("nva_addresses", "list the sync address of every NVA of the region (at least one)")
    addresses = []
    for index, text in enumerate(params["nva_addresses"]):
        address = ipv4_address(text, "nva_addresses[%d]" % index)
        if address in addresses:
            raise AnycastError("nva_addresses[%d]" % index, "%s is already listed as nva_addresses[%d]" % (address, addresses.index(address)))
        addresses.append(address)
    if not 1 <= params["port"] <= 65535:
        raise AnycastError("port", "%s is not a UDP port (1-65535)" % params["port"])
    if not MIN_PRIORITY <= params["priority"] <= MAX_PRIORITY - 1:
        raise AnycastError("priority", "%s is out of range: Azure takes priorities %d-%d and the deny rule uses priority + 1, so %d-%d"
                           % (params["priority"], MIN_PRIORITY, MAX_PRIORITY, MIN_PRIORITY, MAX_PRIORITY - 1))
    return addresses


def _prefixes(rule_props, side):
    """A rule's source or destination as one sorted list (Azure keeps a single prefix and a list in two fields); an
    address written as a /32 is that address."""
    single = rule_props.get(side + "AddressPrefix")
    both = ([single] if single else []) + list(rule_props.get(side + "AddressPrefixes") or [])
    return sorted(set(p[:-3] if p.endswith("/32") else p for p in both))


def _ports(rule_props, side):
    single = rule_props.get(side + "PortRange")
    return sorted(set(([single] if single else []) + list(rule_props.get(side + "PortRanges") or [])))


def rule_view(rule):
    """A security rule as this module compares it."""
    p = props(rule)
    return dict(name=rule["name"], priority=p.get("priority"), direction=p.get("direction"), access=p.get("access"), protocol=p.get("protocol"),
                source=_prefixes(p, "source"), source_ports=_ports(p, "source"), destination=_prefixes(p, "destination"),
                destination_ports=_ports(p, "destination"))


def wanted_rules(addresses, port, priority):
    """The module's two rules (as rule_view() shows them)."""
    nvas = [str(a) for a in sorted(addresses)]
    common = dict(direction="Inbound", protocol="Udp", source_ports=["*"], destination_ports=[str(port)])
    return [dict(common, name=ALLOW_RULE, priority=priority, access="Allow", source=nvas, destination=nvas),
            dict(common, name=DENY_RULE, priority=priority + 1, access="Deny", source=["*"], destination=["*"])]


def _rule_body(view):
    description = "anycast.nva: conntrack sync %s" % ("between the region's NVAs" if view["access"] == "Allow" else "from anywhere else")
    body = dict(protocol=view["protocol"], access=view["access"], direction=view["direction"], priority=view["priority"], description=description,
                sourcePortRange="*", destinationPortRange=view["destination_ports"][0])
    for side in ("source", "destination"):
        if view[side] == ["*"]:
            body[side + "AddressPrefix"] = "*"
        else:
            body[side + "AddressPrefixes"] = view[side]
    return dict(name=view["name"], properties=body)


def _own(rule):
    return rule["name"].lower() in (ALLOW_RULE, DENY_RULE)


def nsg_change(location, wanted, nsg):
    """The group to PUT (None when its two rules already are as wanted): the other rules kept as read."""
    current = [rule_view(r) for r in props(nsg).get("securityRules") or [] if _own(r)]
    if nsg is not None and sorted(current, key=lambda r: r["name"]) == wanted:
        return None
    others = [r for r in props(nsg).get("securityRules") or [] if not _own(r)]
    body = dict(location=nsg["location"] if nsg else location, properties=dict(securityRules=others + [_rule_body(view) for view in wanted]))
    if nsg and nsg.get("tags"):
        body["tags"] = nsg["tags"]
    return model("NetworkSecurityGroup", body)


def _port_covered(port, ranges):
    for text in ranges:
        low, _sep, high = text.partition("-")
        if text == "*" or (low.isdigit() and int(low) <= port <= int(high or low)):
            return True
    return False


def _within(prefixes, addresses):
    """True when every prefix is one of the NVA addresses (or a /32 of one)."""
    try:
        return all(ipaddress.IPv4Network(p, strict=False).prefixlen == 32 and ipaddress.IPv4Network(p).network_address in addresses for p in prefixes)
    except ValueError:
        return False  # '*', a service tag: anything


def check_other_rules(nsg, addresses, port, priority):
    """Refuse, naming priority, another rule at the module's priorities (Azure: SecurityRuleConflict) and another rule
    evaluated first that admits the sync port from beyond the NVAs (the deny would never be reached for it)."""
    for rule in props(nsg).get("securityRules") or []:
        if _own(rule):
            continue
        view = rule_view(rule)
        if view["direction"] != "Inbound":
            continue
        if view["priority"] in (priority, priority + 1):
            raise AnycastError("priority", "rule %r of network security group %s already has inbound priority %s; Azure refuses two inbound rules with "
                               "one priority (SecurityRuleConflict): choose a priority P with P and P+1 free" % (rule["name"], nsg["name"], view["priority"]))
        if (view["priority"] < priority + 1 and view["access"] == "Allow" and view["protocol"] in ("Udp", "*")
                and _port_covered(port, view["destination_ports"]) and not _within(view["source"], addresses)):
            raise AnycastError("priority", "rule %r of network security group %s (priority %s) admits UDP %d from %s before the module's deny rule; "
                               "choose a priority below %s or narrow that rule" % (rule["name"], nsg["name"], view["priority"], port,
                                                                                   ", ".join(view["source"]), view["priority"]))


def _in_subnet(subnet, addresses):
    prefix = props(subnet).get("addressPrefix") or (props(subnet).get("addressPrefixes") or [None])[0]
    for index, address in enumerate(addresses):
        if prefix and address not in ipaddress.IPv4Network(prefix, strict=False):
            raise AnycastError("nva_addresses[%d]" % index, "%s is not in the sync subnet %s (%s): sync traffic from it does not reach the subnet "
                               "through its NSG" % (address, subnet["name"], prefix))


def _view(nsg, subnet_nsg):
    if nsg is None:
        return dict(subnet_nsg=subnet_nsg)
    rules = sorted((rule_view(r) for r in props(nsg).get("securityRules") or [] if _own(r)), key=lambda r: r["name"])
    return dict(name=nsg["name"], location=nsg["location"], rules=rules, subnet_nsg=subnet_nsg)


def ensure(session, params):
    """sync_nsg: every read and every refusal first; then the group (one PUT) and the subnet (one PUT), each only if needed."""
    addresses = validate(params)
    rg, name, port, priority = params["resource_group"], params["name"], params["port"], params["priority"]
    subnet_rg = params["subnet"].get("resource_group") or rg
    subnet = session.read("subnet", session.network.subnets.get, subnet_rg, params["subnet"]["virtual_network"], params["subnet"]["name"])
    _in_subnet(subnet, addresses)
    vnet = session.read("subnet.virtual_network", session.network.virtual_networks.get, *vnet_of_subnet(subnet["id"]))
    location = vnet["location"]
    if params["location"] and normalised(params["location"]) != normalised(location):
        raise AnycastError("location", "%r is not the region of virtual network %s (%s); Azure associates a network security group only with "
                           "subnets of its own region" % (params["location"], vnet["name"], location))

    nsg = session.find("name", session.network.network_security_groups.get, rg, name)
    nsg_id = nsg["id"] if nsg else session.resource_id(rg, "networkSecurityGroups", name)
    if nsg is not None and normalised(nsg["location"]) != normalised(location):
        raise AnycastError("name", "network security group %s is in %s and the sync subnet's virtual network in %s; Azure associates a network "
                           "security group only with subnets of its own region" % (name, nsg["location"], location))
    check_other_rules(nsg, addresses, port, priority)
    on_subnet = referenced(subnet, KEY)
    if on_subnet and not same_id(on_subnet, nsg_id) and not params["replace_nsg"]:
        raise AnycastError("subnet", "subnet %s already has network security group %s, which this task does not manage; set replace_nsg: true to "
                           "put %s in its place (its rules no longer apply to the subnet then)" % (subnet["name"], on_subnet, name))

    wanted = wanted_rules(addresses, port, priority)
    before = _view(nsg, on_subnet)
    after = dict(name=nsg["name"] if nsg else name, location=location, rules=wanted, subnet_nsg=nsg_id)
    nsg_changed = nsg_change(location, wanted, nsg) is not None
    associate = not same_id(on_subnet, nsg_id)
    if nsg_changed:
        api = session.network.network_security_groups
        written = session.update("name", nsg, functools.partial(nsg_change, location, wanted), functools.partial(session.find, "name", api.get, rg, name),
                                 api.begin_create_or_update, rg, name)
        nsg_id = written["id"] if written else nsg_id
    if associate:
        put_reference(session, "subnet", subnet, KEY, nsg_id)
    return result(before, after, changed=nsg_changed or associate, nsg=dict(after, id=nsg_id, subnet=subnet["id"]),
                  associated=associate, replaced=on_subnet if associate and on_subnet else None)
