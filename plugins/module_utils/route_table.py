# -*- coding: utf-8 -*-
# Copyright: (c) 2026, anycast.nva maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A UDR route table with its routes embedded (one PUT for the whole table) and its subnets."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import functools

from ansible_collections.anycast.nva.plugins.module_utils.arm import model, props
from ansible_collections.anycast.nva.plugins.module_utils.compare import by_name, result
from ansible_collections.anycast.nva.plugins.module_utils.errors import AnycastError
from ansible_collections.anycast.nva.plugins.module_utils.locations import check_location, normalised
from ansible_collections.anycast.nva.plugins.module_utils.subnet import put_reference, subnet_args, uses
from ansible_collections.anycast.nva.plugins.module_utils.validation import ipv4_address, ipv4_network, resource_name
from ansible_collections.anycast.nva.plugins.module_utils.vnet import vnet_of_subnet

# The module offers these as choices, so Ansible refuses anything else before main() runs.
NEXT_HOP_TYPES = ["VirtualNetworkGateway", "VnetLocal", "Internet", "VirtualAppliance", "None"]
# Azure's limit of routes in one route table.
MAX_ROUTES = 400
_SUBNET_OPTIONS = dict(
    virtual_network=dict(type="str", required=True),
    name=dict(type="str", required=True),
    resource_group=dict(type="str"),
)
# The options of route_table (the module adds the common Azure options); documented in the module.
ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    resource_group=dict(type="str", required=True),
    location=dict(type="str"),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    routes=dict(type="list", elements="dict", options=dict(
        name=dict(type="str", required=True),
        address_prefix=dict(type="str", required=True),
        next_hop_type=dict(type="str", required=True, choices=NEXT_HOP_TYPES),
        next_hop_ip_address=dict(type="str"),
    )),
    purge_routes=dict(type="bool", default=True),
    disable_bgp_route_propagation=dict(type="bool"),
    subnets=dict(type="list", elements="dict", options=_SUBNET_OPTIONS),
    dissociate_subnets=dict(type="list", elements="dict", options=_SUBNET_OPTIONS),
    purge_subnets=dict(type="bool", default=False),
)


def validate(params):
    """Every local check, before the first call to Azure. Returns the routes parsed (None when routes is omitted):
    name, next_hop_type, address_prefix as IPv4Network and next_hop_ip_address as IPv4Address (or None)."""
    resource_name(params["name"], "name")
    if len(params["routes"] or []) > MAX_ROUTES:
        raise AnycastError("routes", "%d routes listed; Azure allows at most %d routes in a route table" % (len(params["routes"]), MAX_ROUTES))
    routes = None if params["routes"] is None else []
    names, prefixes = set(), {}
    for index, route in enumerate(params["routes"] or []):
        where = "routes[%d]" % index
        resource_name(route["name"], where + ".name")
        if route["name"].lower() in names:
            raise AnycastError(where + ".name", "route name %r appears twice" % route["name"])
        names.add(route["name"].lower())
        prefix = ipv4_network(route["address_prefix"], where + ".address_prefix")
        if prefix in prefixes:
            raise AnycastError(where + ".address_prefix", "%s is already the prefix of route %r" % (prefix, prefixes[prefix]))
        prefixes[prefix] = route["name"]
        next_hop = None
        if route["next_hop_type"] == "VirtualAppliance":
            if not route.get("next_hop_ip_address"):
                raise AnycastError(where + ".next_hop_ip_address", "required when next_hop_type is VirtualAppliance")
            next_hop = ipv4_address(route["next_hop_ip_address"], where + ".next_hop_ip_address")
        elif route.get("next_hop_ip_address"):
            raise AnycastError(where + ".next_hop_ip_address", "only allowed when next_hop_type is VirtualAppliance (got %s)" % route["next_hop_type"])
        routes.append(dict(name=route["name"], address_prefix=prefix, next_hop_type=route["next_hop_type"], next_hop_ip_address=next_hop))
    seen = {}
    for option in ("subnets", "dissociate_subnets"):
        for index, subnet in enumerate(params[option] or []):
            where = "%s[%d]" % (option, index)
            resource_name(subnet["virtual_network"], where + ".virtual_network")
            resource_name(subnet["name"], where + ".name")
            if option == "subnets" and subnet["name"].lower() == "routeserversubnet":
                raise AnycastError(where + ".name", "Route Server does not support a route table on RouteServerSubnet")
            key = ((subnet.get("resource_group") or params["resource_group"]).lower(), subnet["virtual_network"].lower(), subnet["name"].lower())
            if key in seen:
                raise AnycastError(where, "subnet %s/%s is already listed in %s" % (subnet["virtual_network"], subnet["name"], seen[key]))
            seen[key] = where
    return routes


def _route_view(name, address_prefix, next_hop_type, next_hop_ip_address):
    return dict(name=name, address_prefix=address_prefix, next_hop_type=next_hop_type, next_hop_ip_address=next_hop_ip_address or None)


def _routes_of(table):
    return [_route_view(r["name"], props(r).get("addressPrefix", ""), props(r).get("nextHopType"), props(r).get("nextHopIpAddress"))
            for r in props(table).get("routes") or []]


def table_view(table):
    """The table as this module manages it; subnets are in the view so the diff shows them."""
    if table is None:
        return {}
    return dict(name=table.get("name"), location=table.get("location"),
                disable_bgp_route_propagation=bool(props(table).get("disableBgpRoutePropagation")),
                routes=sorted(_routes_of(table), key=lambda r: r["name"].lower()),
                subnets=sorted(s["id"] for s in props(table).get("subnets") or []))


def desired_routes(routes, purge_routes, current_routes):
    """The routes the table should have: routes as validate() parsed them (None leaves the table's routes alone)."""
    if routes is None:
        return current_routes
    # A route keeps the letter case it was created with (Azure's names are case-insensitive): a listed name that
    # differs only in case is that route, under its name in Azure, or the table would be rewritten on every run.
    # Prefix ("10.1.0.0/16") and next hop address as Azure shows them.
    current = by_name(current_routes)
    wanted = [_route_view(current.get(r["name"].lower(), r)["name"], str(r["address_prefix"]), r["next_hop_type"],
                          str(r["next_hop_ip_address"]) if r["next_hop_ip_address"] else None)
              for r in routes]
    if not purge_routes:
        # Keep the routes nobody listed; a listed name replaces the route of that name.
        listed = by_name(wanted)
        wanted += [r for r in current_routes if r["name"].lower() not in listed]
    return sorted(wanted, key=lambda r: r["name"].lower())


def table_body(table, view):
    """The whole table with every route embedded: one PUT writes them all."""
    routes = []
    for route in view["routes"]:
        route_props = dict(addressPrefix=route["address_prefix"], nextHopType=route["next_hop_type"])
        if route["next_hop_ip_address"]:
            route_props["nextHopIpAddress"] = route["next_hop_ip_address"]
        routes.append(dict(name=route["name"], properties=route_props))
    body = dict(location=view["location"], properties=dict(disableBgpRoutePropagation=view["disable_bgp_route_propagation"], routes=routes))
    if table and table.get("tags"):
        body["tags"] = table["tags"]
    return model("RouteTable", body)


def _desired_view(params, routes, table):
    """The table as this module wants it, from the table as read (None: not there yet): its settings applied,
    the rest (routes nobody listed when purge_routes is false, location) kept."""
    view = dict(name=table["name"] if table else params["name"], location=table["location"] if table else params["location"],
                disable_bgp_route_propagation=bool(props(table).get("disableBgpRoutePropagation")),
                routes=desired_routes(routes, params["purge_routes"], table_view(table).get("routes", [])))
    if params["disable_bgp_route_propagation"] is not None:
        view["disable_bgp_route_propagation"] = params["disable_bgp_route_propagation"]
    return view


def _table_change(params, routes, table):
    """The table to PUT (None when it already is as wanted)."""
    view = _desired_view(params, routes, table)
    if table is not None and dict(table_view(table), subnets=None) == dict(view, subnets=None):
        return None
    return table_body(table, view)


def _read_subnets(session, params, option):
    out = []
    for index, subnet in enumerate(params[option] or []):
        rg = subnet.get("resource_group") or params["resource_group"]
        out.append(session.read("%s[%d]" % (option, index), session.network.subnets.get, rg, subnet["virtual_network"], subnet["name"]))
    return out


def _put_subnet(session, subnet, table_id):
    """Associate (table_id) or dissociate (None) one subnet."""
    put_reference(session, "subnets", subnet, "routeTable", table_id)


def _uses(subnet, table_id):
    return uses(subnet, "routeTable", table_id)


def _to_dissociate(session, params, table, table_id, listed):
    """Subnets to take off the table: those in dissociate_subnets that use it and, with purge_subnets,
    every subnet using it that is not listed in subnets. Never any other subnet."""
    chosen = [s for s in _read_subnets(session, params, "dissociate_subnets") if _uses(s, table_id)]
    if params["purge_subnets"] and table:
        skip = set(s["id"].lower() for s in listed + chosen)
        chosen += [session.read("purge_subnets", session.network.subnets.get, *subnet_args(ref["id"]))
                   for ref in props(table).get("subnets") or [] if ref["id"].lower() not in skip]
    return chosen


def _check_same_region(session, listed, table_id, location):
    """Azure associates a route table only with subnets whose VNet is in the table's region: refuse any other
    before the first write (only the subnets still to associate are read, so a rerun reads nothing more)."""
    for index, subnet in enumerate(listed):
        if _uses(subnet, table_id):
            continue
        rg, vnet_name = vnet_of_subnet(subnet["id"])
        vnet = session.read("subnets[%d]" % index, session.network.virtual_networks.get, rg, vnet_name)
        if normalised(vnet.get("location")) != normalised(location):
            raise AnycastError("subnets[%d]" % index, "subnet %s/%s is in %s and route table is in %s; Azure associates a route table "
                               "only with subnets of its own region" % (vnet_name, subnet["name"], vnet.get("location"), location))


def ensure(session, params):
    """route_table: converge the table (one PUT), then associate / dissociate the subnets that need it."""
    routes = validate(params)
    rg, name = params["resource_group"], params["name"]
    table = session.find("name", session.network.route_tables.get, rg, name)
    table_id = table["id"] if table else session.resource_id(rg, "routeTables", name)
    before = table_view(table)

    # Every read, and every refusal, happens before the first write.
    listed = _read_subnets(session, params, "subnets") if params["state"] == "present" else []
    dissociate = _to_dissociate(session, params, table, table_id, listed)
    dissociated = sorted(s["id"] for s in dissociate)

    if params["state"] == "absent":
        if table is None:
            return result({}, {}, route_table={}, associated=[], dissociated=[])
        left = set(ref["id"].lower() for ref in props(table).get("subnets") or []) - set(i.lower() for i in dissociated)
        if left:
            raise AnycastError("dissociate_subnets", "route table %r is still associated with %s; list them in dissociate_subnets "
                               "(or set purge_subnets: true) to delete it" % (name, ", ".join(sorted(left))))
        for subnet in dissociate:
            _put_subnet(session, subnet, None)
        session.write("name", session.network.route_tables.begin_delete, rg, name)
        return result(before, {}, route_table={}, associated=[], dissociated=dissociated)

    if table is None and not params["location"]:
        raise AnycastError("location", "required to create route table %r" % name)
    if table is None:
        check_location(session, "location", params["location"])
    associate = [s for s in listed if not _uses(s, table_id)]
    _check_same_region(session, listed, table_id, table["location"] if table else params["location"])

    after = _desired_view(params, routes, table)
    table_changed = _table_change(params, routes, table) is not None
    gone = set(i.lower() for i in dissociated)
    after["subnets"] = sorted(i for i in set(before.get("subnets", [])) | set(s["id"] for s in associate) if i.lower() not in gone)

    if table_changed:
        api = session.network.route_tables
        written = session.update("name", table, functools.partial(_table_change, params, routes), functools.partial(session.find, "name", api.get, rg, name),
                                 api.begin_create_or_update, rg, name)
        table_id = written["id"] if written else table_id
    for subnet in associate:
        _put_subnet(session, subnet, table_id)
    for subnet in dissociate:
        _put_subnet(session, subnet, None)

    return result(before, after, changed=table_changed or bool(associate) or bool(dissociate), route_table=dict(after, id=table_id),
                  associated=sorted(s["id"] for s in associate), dissociated=dissociated)
