# -*- coding: utf-8 -*-
# Copyright: (c) 2026, anycast.nva maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Route Server (ARM: Microsoft.Network/virtualHubs): facts, ensure, wait for routing."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import functools

from ansible_collections.anycast.nva.plugins.module_utils.arm import model, props
from ansible_collections.anycast.nva.plugins.module_utils.compare import differing_keys, result
from ansible_collections.anycast.nva.plugins.module_utils.errors import AnycastError
from ansible_collections.anycast.nva.plugins.module_utils.locations import check_location
from ansible_collections.anycast.nva.plugins.module_utils.validation import resource_name

IP_CONFIG_NAME = "ipconfig1"
# Azure requires this subnet name for a Route Server (a /27 or larger).
ROUTE_SERVER_SUBNET = "RouteServerSubnet"
# Hub settings this module manages: option -> ARM property.
_HUB_SETTINGS = (("allow_branch_to_branch_traffic", "allowBranchToBranchTraffic"), ("hub_routing_preference", "hubRoutingPreference"))
# Learned/advertised route fields as Azure returns them -> as the modules return them.
_ROUTE_KEYS = (("localAddress", "local_address"), ("network", "network"), ("nextHop", "next_hop"),
               ("sourcePeer", "source_peer"), ("origin", "origin"), ("asPath", "as_path"), ("weight", "weight"))

# The options of route_server_info (the module adds the common Azure options); documented in the module.
INFO_ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    resource_group=dict(type="str", required=True),
    include_routes=dict(type="bool", default=False),
)
# The options of route_server (the module adds the common Azure options); documented in the module.
ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    resource_group=dict(type="str", required=True),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    allow_branch_to_branch_traffic=dict(type="bool"),
    hub_routing_preference=dict(type="str", choices=["ExpressRoute", "VpnGateway", "ASPath"]),
    create=dict(type="bool", default=False),
    location=dict(type="str"),
    virtual_network=dict(type="str"),
    virtual_network_resource_group=dict(type="str"),
    subnet=dict(type="str", default="RouteServerSubnet"),
    public_ip=dict(type="str"),
)


def find_hub(session, field, resource_group, name):
    """The hub JSON, or None when it does not exist."""
    return session.find(field, session.network.virtual_hubs.get, resource_group, name)


def read_hub(session, field, resource_group, name):
    """The hub JSON; a missing Route Server is an error naming field."""
    hub = find_hub(session, field, resource_group, name)
    if hub is None:
        raise AnycastError(field, "Route Server %r not found in resource group %r" % (name, resource_group), code="ResourceNotFound", status=404)
    return hub


def _facts(resource, top, **arm_properties):
    """A resource in snake_case, in this order: its top-level keys `top`, then fact=ARM property name for each given."""
    p = props(resource)
    facts = dict((key, resource.get(key)) for key in top)
    facts.update((fact, p.get(arm_name)) for fact, arm_name in arm_properties.items())
    return facts


def hub_facts(hub):
    """What a user wants to know about a Route Server, in snake_case."""
    facts = _facts(hub, ("name", "id", "location"), asn="virtualRouterAsn", instance_ips="virtualRouterIps",
                   allow_branch_to_branch_traffic="allowBranchToBranchTraffic", hub_routing_preference="hubRoutingPreference",
                   sku="sku", provisioning_state="provisioningState", routing_state="routingState")
    facts["instance_ips"] = list(facts["instance_ips"] or [])
    facts["allow_branch_to_branch_traffic"] = bool(facts["allow_branch_to_branch_traffic"])
    return facts


def peer_facts(connection):
    """A BGP connection (peer) in snake_case."""
    return _facts(connection, ("name", "id"), peer_ip="peerIp", peer_asn="peerAsn", connection_state="connectionState",
                  provisioning_state="provisioningState")


def list_peers(session, field, resource_group, hub_name):
    return session.read(field, session.network.virtual_hub_bgp_connections.list, resource_group, hub_name)


def _routes_by_instance(answer):
    # {"RouteServiceRole_IN_0": [route, ...], ...} -> same keys, snake_case routes
    out = {}
    for instance, routes in sorted((answer or {}).items()):
        out[instance] = [dict((new, route.get(old)) for old, new in _ROUTE_KEYS if old in route) for route in routes or []]
    return out


def info(session, params):
    """route_server_info: the Route Server, its peers and optionally their routes."""
    resource_name(params["name"], "name")
    hub = read_hub(session, "name", params["resource_group"], params["name"])
    facts = hub_facts(hub)
    peers = [peer_facts(c) for c in list_peers(session, "name", params["resource_group"], params["name"])]
    if params["include_routes"]:
        ops = session.network.virtual_hub_bgp_connections
        for peer in peers:
            args = (params["resource_group"], params["name"], peer["name"])
            peer["learned_routes"] = _routes_by_instance(session.long_running_read("include_routes", ops.begin_list_learned_routes, *args))
            peer["advertised_routes"] = _routes_by_instance(session.long_running_read("include_routes", ops.begin_list_advertised_routes, *args))
    facts["peers"] = sorted(peers, key=lambda peer: peer["name"])
    return dict(changed=False, route_server=facts)


def wait_for_routing(session, field, resource_group, name):
    """Poll the hub until routingState is Provisioned (a peer PUT fails before that)."""

    def probe():
        hub = read_hub(session, field, resource_group, name)
        p = props(hub)
        if "Failed" in (p.get("provisioningState"), p.get("routingState")):
            raise AnycastError(field, "Route Server %r is in a failed state (provisioningState %s, routingState %s)"
                               % (name, p.get("provisioningState"), p.get("routingState")), code="RouteServerFailed")
        if p.get("routingState") in (None, "None") and p.get("provisioningState") == "Succeeded":
            # Routing never comes without an ipConfiguration: no point in waiting for it.
            raise AnycastError(field, "Route Server %r has routingState %s: it has no ipConfiguration; set create: true with virtual_network "
                                      "to complete it" % (name, p.get("routingState")), code="RouteServerIncomplete")
        return p.get("routingState") == "Provisioned" and p.get("provisioningState") == "Succeeded", hub

    return session.wait_until(field, "routingState Provisioned", probe)


def _managed_view(facts):
    # The settings this module manages: the diff shows exactly these.
    if facts is None:
        return {}
    keys = ("name", "location", "allow_branch_to_branch_traffic", "hub_routing_preference")
    return dict((key, facts.get(key)) for key in keys)


def _validate_create(params):
    for option in ("location", "virtual_network"):
        if not params.get(option):
            raise AnycastError(option, "required to create Route Server %r (create: true and it does not exist)" % params["name"])
    resource_name(params["virtual_network"], "virtual_network")
    resource_name(params["subnet"], "subnet")
    resource_name(params["public_ip"] or params["name"] + "-pip", "public_ip")


def ensure(session, params):
    """route_server: ensure branch-to-branch and routing preference; create or delete when asked."""
    rg, name = params["resource_group"], params["name"]
    resource_name(name, "name")
    hub = find_hub(session, "name", rg, name)
    before = hub_facts(hub) if hub else None

    if params["state"] == "absent":
        if hub is None:
            return result({}, {}, route_server={})
        _delete(session, rg, name)
        return result(_managed_view(before), {}, changed=True, route_server={})

    # A hub without ipConfiguration is a create that did not finish: completed with create: true, never waited for.
    built = hub is not None and bool(session.read("name", session.network.virtual_hub_ip_configuration.list, rg, name))
    if not built and not params["create"]:
        if hub is None:
            raise AnycastError("name", "Route Server %r not found in resource group %r; set create: true to create it" % (name, rg),
                               code="ResourceNotFound", status=404)
        raise AnycastError("name", "Route Server %r has no ipConfiguration (a create that did not finish); set create: true with "
                                   "virtual_network to complete it" % name, code="RouteServerIncomplete")
    plan = None if built else _plan_create(session, params, hub)

    desired = dict(_managed_view(before) or dict(name=name, location=params["location"],
                                                 allow_branch_to_branch_traffic=False, hub_routing_preference="ExpressRoute"))
    for option in ("allow_branch_to_branch_traffic", "hub_routing_preference"):
        if params[option] is not None:
            desired[option] = params[option]
    changed_keys = differing_keys(_managed_view(before), desired)

    if (changed_keys or plan) and not session.check_mode:
        if hub is not None and changed_keys:
            api = session.network.virtual_hubs
            session.update("name", hub, functools.partial(_with_settings, params), functools.partial(read_hub, session, "name", rg, name),
                           api.begin_create_or_update, rg, name)
        if plan:
            _create(session, params, desired, hub, plan)
    if session.check_mode:
        facts = dict(before or {}, **desired)
    else:
        facts = hub_facts(wait_for_routing(session, "name", rg, name))
    return result(_managed_view(before), _managed_view(facts), changed=bool(changed_keys or plan), changed_keys=changed_keys, route_server=facts)


def _with_settings(params, hub):
    """The hub as read with only the settings the task sets changed (None when it already has them)."""
    facts = hub_facts(hub)
    wanted = dict((key, params[option]) for option, key in _HUB_SETTINGS if params[option] is not None and facts[option] != params[option])
    if not wanted:
        return None
    body = dict(hub)
    body["properties"] = dict(props(hub), **wanted)
    return model("VirtualHub", body)


def _same_region(one, other):
    return (one or "").replace(" ", "").lower() == (other or "").replace(" ", "").lower()


def _plan_create(session, params, hub):
    """Everything a create (or the completion of a half-built Route Server) needs, read and checked before its
    first write: the subnet and the public IP to use (None: to be created). Raises naming the option at fault."""
    _validate_create(params)
    rg, name, net = params["resource_group"], params["name"], session.network
    if params["subnet"] != ROUTE_SERVER_SUBNET:
        raise AnycastError("subnet", "Route Server must use the subnet named %s, not %r" % (ROUTE_SERVER_SUBNET, params["subnet"]))
    if hub is not None and not _same_region(hub["location"], params["location"]):
        raise AnycastError("location", "Route Server %r already exists in %s, not %s" % (name, hub["location"], params["location"]))
    check_location(session, "location", params["location"])
    vnet_rg = params["virtual_network_resource_group"] or rg
    vnet = session.read("virtual_network", net.virtual_networks.get, vnet_rg, params["virtual_network"])
    if not _same_region(vnet["location"], params["location"]):
        raise AnycastError("location", "%s, but VNet %s is in %s: a Route Server lives in its VNet's region"
                           % (params["location"], vnet["name"], vnet["location"]))
    subnet = session.read("subnet", net.subnets.get, vnet_rg, params["virtual_network"], params["subnet"])
    prefix = props(subnet).get("addressPrefix") or (props(subnet).get("addressPrefixes") or ["0.0.0.0/0"])[0]
    if int(prefix.split("/")[1]) > 27:
        raise AnycastError("subnet", "%s of VNet %s is %s; Route Server needs a /27 or larger" % (params["subnet"], vnet["name"], prefix))
    hub_id = session.resource_id(rg, "virtualHubs", name).lower()
    users = [c["id"] for c in props(subnet).get("ipConfigurations") or [] if not c["id"].lower().startswith(hub_id + "/")]
    if users:
        raise AnycastError("subnet", "%s of VNet %s is already used by %s" % (params["subnet"], vnet["name"], users[0]))
    pip_name = params["public_ip"] or name + "-pip"
    pip = session.find("public_ip", net.public_ip_addresses.get, rg, pip_name)
    if pip is not None:
        user = (props(pip).get("ipConfiguration") or {}).get("id") or ""
        if (pip.get("sku") or {}).get("name") != "Standard" or props(pip).get("publicIPAllocationMethod") != "Static":
            raise AnycastError("public_ip", "%s is not a Standard static public IP, which Route Server needs" % pip_name)
        if not _same_region(pip["location"], params["location"]):
            raise AnycastError("public_ip", "%s is in %s, not %s" % (pip_name, pip["location"], params["location"]))
        if user and not user.lower().startswith(hub_id + "/"):
            raise AnycastError("public_ip", "%s is already used by %s" % (pip_name, user))
    return dict(subnet=subnet, public_ip=pip, public_ip_name=pip_name)


def _create(session, params, desired, hub, plan):
    """What is missing of Standard public IP, hub (sku Standard) and ipConfiguration on the RouteServerSubnet:
    all of it for a new Route Server, the rest of a half-built one (whose public IP may be left from before)."""
    rg, name, net = params["resource_group"], params["name"], session.network
    pip = plan["public_ip"]
    if pip is None:
        body = dict(location=params["location"], sku=dict(name="Standard"),
                    properties=dict(publicIPAllocationMethod="Static", publicIPAddressVersion="IPv4"))
        pip = session.write("public_ip", net.public_ip_addresses.begin_create_or_update, rg, plan["public_ip_name"], model("PublicIPAddress", body))
    if hub is None:
        body = dict(location=params["location"], properties=dict(
            sku="Standard", allowBranchToBranchTraffic=desired["allow_branch_to_branch_traffic"],
            hubRoutingPreference=desired["hub_routing_preference"]))
        session.write("name", net.virtual_hubs.begin_create_or_update, rg, name, model("VirtualHub", body))
    ip_config = dict(name=IP_CONFIG_NAME, properties=dict(subnet=dict(id=plan["subnet"]["id"]), publicIPAddress=dict(id=pip["id"])))
    session.write("name", net.virtual_hub_ip_configuration.begin_create_or_update, rg, name, IP_CONFIG_NAME,
                  model("HubIpConfiguration", ip_config))


def _delete(session, rg, name):
    """Azure deletes a Route Server only after its ipConfigurations are gone."""
    net = session.network
    for config in session.read("name", net.virtual_hub_ip_configuration.list, rg, name):
        session.write("name", net.virtual_hub_ip_configuration.begin_delete, rg, name, config["name"])
    session.write("name", net.virtual_hubs.begin_delete, rg, name)
