# -*- coding: utf-8 -*-
# Copyright: (c) 2026, anycast.nva maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Route Server (ARM: Microsoft.Network/virtualHubs): facts, ensure, wait for routing."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.anycast.nva.plugins.module_utils.arm import model, props
from ansible_collections.anycast.nva.plugins.module_utils.compare import differing_keys, result
from ansible_collections.anycast.nva.plugins.module_utils.errors import AnycastError
from ansible_collections.anycast.nva.plugins.module_utils.validation import resource_name

IP_CONFIG_NAME = "ipconfig1"
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


def hub_facts(hub):
    """What a user wants to know about a Route Server, in snake_case."""
    p = props(hub)
    return dict(
        name=hub.get("name"),
        id=hub.get("id"),
        location=hub.get("location"),
        asn=p.get("virtualRouterAsn"),
        instance_ips=list(p.get("virtualRouterIps") or []),
        allow_branch_to_branch_traffic=bool(p.get("allowBranchToBranchTraffic")),
        hub_routing_preference=p.get("hubRoutingPreference"),
        sku=p.get("sku"),
        provisioning_state=p.get("provisioningState"),
        routing_state=p.get("routingState"),
    )


def peer_facts(connection):
    """A BGP connection (peer) in snake_case."""
    p = props(connection)
    return dict(
        name=connection.get("name"),
        id=connection.get("id"),
        peer_ip=p.get("peerIp"),
        peer_asn=p.get("peerAsn"),
        connection_state=p.get("connectionState"),
        provisioning_state=p.get("provisioningState"),
    )


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

    if hub is None and not params["create"]:
        raise AnycastError("name", "Route Server %r not found in resource group %r; set create: true to create it" % (name, rg),
                           code="ResourceNotFound", status=404)
    if hub is None:
        _validate_create(params)

    desired = dict(_managed_view(before) or dict(name=name, location=params["location"],
                                                 allow_branch_to_branch_traffic=False, hub_routing_preference="ExpressRoute"))
    for option in ("allow_branch_to_branch_traffic", "hub_routing_preference"):
        if params[option] is not None:
            desired[option] = params[option]
    changed_keys = differing_keys(_managed_view(before), desired)

    if changed_keys and not session.check_mode:
        if hub is None:
            _create(session, params, desired)
        else:
            body = dict(hub)
            body["properties"] = dict(props(hub), allowBranchToBranchTraffic=desired["allow_branch_to_branch_traffic"],
                                      hubRoutingPreference=desired["hub_routing_preference"])
            session.write("name", session.network.virtual_hubs.begin_create_or_update, rg, name, model("VirtualHub", body))
    if session.check_mode:
        facts = dict(before or {}, **desired)
    else:
        facts = hub_facts(wait_for_routing(session, "name", rg, name))
    return result(_managed_view(before), _managed_view(facts), changed=bool(changed_keys), changed_keys=changed_keys, route_server=facts)


def _create(session, params, desired):
    """Standard public IP, hub (sku Standard), ipConfiguration on the RouteServerSubnet."""
    rg, name, net = params["resource_group"], params["name"], session.network
    vnet_rg = params["virtual_network_resource_group"] or rg
    subnet = session.read("subnet", net.subnets.get, vnet_rg, params["virtual_network"], params["subnet"])
    pip_name = params["public_ip"] or name + "-pip"
    pip = session.find("public_ip", net.public_ip_addresses.get, rg, pip_name)
    if pip is None:
        body = dict(location=params["location"], sku=dict(name="Standard"),
                    properties=dict(publicIPAllocationMethod="Static", publicIPAddressVersion="IPv4"))
        pip = session.write("public_ip", net.public_ip_addresses.begin_create_or_update, rg, pip_name, model("PublicIPAddress", body))
    body = dict(location=params["location"], properties=dict(
        sku="Standard", allowBranchToBranchTraffic=desired["allow_branch_to_branch_traffic"],
        hubRoutingPreference=desired["hub_routing_preference"]))
    session.write("name", net.virtual_hubs.begin_create_or_update, rg, name, model("VirtualHub", body))
    ip_config = dict(name=IP_CONFIG_NAME, properties=dict(subnet=dict(id=subnet["id"]), publicIPAddress=dict(id=pip["id"])))
    session.write("name", net.virtual_hub_ip_configuration.begin_create_or_update, rg, name, IP_CONFIG_NAME,
                  model("HubIpConfiguration", ip_config))


def _delete(session, rg, name):
    """Azure deletes a Route Server only after its ipConfigurations are gone."""
    net = session.network
    for config in session.read("name", net.virtual_hub_ip_configuration.list, rg, name):
        session.write("name", net.virtual_hub_ip_configuration.begin_delete, rg, name, config["name"])
    session.write("name", net.virtual_hubs.begin_delete, rg, name)
