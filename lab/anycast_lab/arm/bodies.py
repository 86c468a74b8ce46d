"""Stored bodies and what clients see of them.

A write stores a body with a new etag; rendering adds the embedded children and back-references (VNet.subnets,
routeTable.routes, routeTable.subnets, NSG.securityRules, defaultSecurityRules and subnets, subnet.ipConfigurations,
hub.bgpConnections...) from the flat store, so they are always consistent. Shapes follow the official 2025-07-01 examples.
"""
import copy
import uuid

from .addressing import PROVIDER, TYPES, arm_type
from .errors import ArmError
from .nsg_validation import default_rules
from .usage import all_ip_configurations, routing_state, subnet_ip_configurations, subnets_using


def new_etag():
    """A weak etag, new on every write (a child's write gives its parent one too)."""
    return f'W/"{uuid.uuid4()}"'


def render(svc, body):
    """The ARM body a client sees for a stored resource."""
    out = {key: copy.deepcopy(value) for key, value in body.items() if key != "_emu"}
    props = out["properties"]
    type_key = body["type"][len(PROVIDER) + 1:]
    store = svc.store
    if type_key == "virtualNetworks":
        props["subnets"] = [render(svc, child) for child in store.children(body["id"], "subnets")]
        props.setdefault("virtualNetworkPeerings", [])
    elif type_key == "virtualNetworks/subnets":
        configs = subnet_ip_configurations(store, body["id"])
        if configs:
            props["ipConfigurations"] = [{"id": ip["id"]} for ip in configs]
    elif type_key == "routeTables":
        props["routes"] = [render(svc, child) for child in store.children(body["id"], "routes")]
        users = subnets_using(store, body["id"])
        if users:
            props["subnets"] = [{"id": subnet_id} for subnet_id in users]
    elif type_key == "networkSecurityGroups":
        props["securityRules"] = [render(svc, child) for child in store.children(body["id"], "securityRules")]
        props["defaultSecurityRules"] = default_rules(body["id"], props["provisioningState"])
        users = subnets_using(store, body["id"], "networkSecurityGroup")
        if users:
            props["subnets"] = [{"id": subnet_id} for subnet_id in users]
    elif type_key == "virtualHubs":
        props["routingState"] = routing_state(svc, body)
        props["bgpConnections"] = [{"id": child["id"]} for child in store.children(body["id"], "bgpConnections")]
        props["ipConfigurations"] = [{"id": child["id"]} for child in store.children(body["id"], "ipConfigurations")]
        props.setdefault("virtualHubRouteTableV2s", [])
    elif type_key == "networkInterfaces":
        for config in props["ipConfigurations"]:
            config["id"] = f"{body['id']}/ipConfigurations/{config['name']}"
            config["type"] = f"{body['type']}/ipConfigurations"
            config["etag"] = body["etag"]
            config["properties"]["provisioningState"] = props["provisioningState"]
    elif type_key == "publicIPAddresses":
        user = next((ip["id"] for ip in all_ip_configurations(store) if ip["public_ip"].lower() == body["id"].lower()), None)
        if user:
            props["ipConfiguration"] = {"id": user}
    return out


def new_body(ref, location, props, existing, tags=None, sku=None):
    """The stored body of a resource after a write (provisioningState set by the caller)."""
    body = {"id": ref.id, "name": ref.names[-1], "type": arm_type(ref.type_key), "etag": new_etag(), "properties": props}
    if existing is not None:
        body["id"], body["name"] = existing["id"], existing["name"]
        body["_emu"] = copy.deepcopy(existing.get("_emu", {}))
    if TYPES[ref.type_key] is None:
        body["location"] = location
        if tags is not None:
            body["tags"] = tags
        elif existing is not None and "tags" in existing:
            body["tags"] = existing["tags"]
    if ref.type_key == "virtualHubs" and not props.get("virtualWan"):
        body["kind"] = "RouteServer"
    if ref.type_key == "publicIPAddresses":
        body["sku"] = sku or {"name": "Standard", "tier": "Regional"}
    return body


def location_of(body, fallback):
    if not isinstance(body.get("location"), str) or not body["location"]:
        if fallback:
            return fallback
        raise ArmError(400, "LocationRequired", "The location property is required for this definition.")
    return body["location"]
