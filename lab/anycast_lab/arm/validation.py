"""Body validation per resource type: what an ARM PUT may store, and what a DELETE must refuse.

A validator returns the properties to store; embedded children (VNet.subnets, routeTable.routes, NSG.securityRules) come
back as (Ref, properties) pairs under `_subnets` / `_routes` / `_securityRules` for the write to store as child resources.
"""
import copy
import ipaddress
import uuid

from .addressing import arm_type, id_ref
from .catalog import normalised
from .errors import bad_request
from .fields import check_bool, check_choice, check_ipv4, check_prefix, check_ref, embedded, props_of
from .nsg_validation import validate_child_rule, validate_nsg
from .route_server_validation import validate_bgp, validate_hub, validate_hub_ipconfig
from .usage import addresses_of, all_ip_configurations, subnet_ip_configurations, subnets_using

NEXT_HOP_TYPES = ("VirtualNetworkGateway", "VnetLocal", "Internet", "VirtualAppliance", "None")
# User-defined routes per route table: 400 in Azure's limits page as the collection's modules read it (route_table refuses
# 401). Azure announced 1,000 in 2026 (learn.microsoft.com azure-subscription-service-limits); the emulator follows the
# modules' figure so that a module which forgets its check is caught.
MAX_ROUTES = 400
# Codes the emulator chose where ARM's own could not be found (Azure REST API docs, azure-sdk-for-python, azure-cli and
# terraform-provider-azurerm issues quote none): a route table on RouteServerSubnet and too many routes (a BGP peer at an
# address no NVA can have: route_server_validation.py).
ROUTE_TABLE_ON_ROUTE_SERVER_SUBNET = "RouteTableNotAllowedOnRouteServerSubnet"
ROUTE_LIMIT_REACHED = "RouteTableRouteLimitReached"


def validate(svc, ref, body, existing):
    """Check a PUT body; return the properties to store (raises ArmError 400 naming the field)."""
    if not isinstance(body, dict):
        raise bad_request("InvalidRequestContent", "The request content was invalid and could not be deserialized: the body must be a JSON object.")
    props = copy.deepcopy(props_of(body))
    props.pop("provisioningState", None)
    props = _VALIDATORS[ref.type_key](svc, ref, props, existing)
    _check_reference_regions(svc, ref, body, existing, props)
    return props


# What a subnet may reference, by property: (the type, what it is called in messages).
SUBNET_REFERENCES = {"routeTable": ("routeTables", "route table"), "networkSecurityGroup": ("networkSecurityGroups", "network security group")}


def _check_reference_regions(svc, ref, body, existing, props):
    """A subnet may only use a route table or network security group of its VNet's region: ARM answers a reference across
    regions as it answers a missing one (400 InvalidResourceReference, "... and that both resources are in the same
    region", quoted in MicrosoftDocs/azure-docs#32363 for a subnet's route table and a NIC's subnet)."""
    if ref.type_key == "virtualNetworks":
        location = body.get("location") or (existing or {}).get("location")
        subnets = [(sub_ref, sub_props, f"properties.subnets[{index}].properties") for index, (sub_ref, sub_props) in enumerate(props["_subnets"])]
    elif ref.type_key == "virtualNetworks/subnets":
        location = svc.store.get(ref.parent_id)["location"]
        subnets = [(ref, props, "properties")]
    else:
        return
    for sub_ref, sub_props, field in subnets:
        for key, (_type, label) in SUBNET_REFERENCES.items():
            target = svc.store.get(sub_props[key]["id"]) if sub_props.get(key) else None
            if target is not None and isinstance(location, str) and normalised(target["location"]) != normalised(location):
                raise bad_request("InvalidResourceReference", f"Resource {target['id']} referenced by resource {sub_ref.id} was not found. Please "
                                                              f"make sure that the referenced resource exists, and that both resources are in the "
                                                              f"same region: property '{field}.{key}' names a {label} in {target['location']}, the "
                                                              f"virtual network is in {location}.")


def _validate_vnet(svc, ref, props, existing):  # pylint: disable=unused-argument
    space = props.get("addressSpace", {}).get("addressPrefixes") if isinstance(props.get("addressSpace"), dict) else None
    if not isinstance(space, list) or not space:
        raise bad_request("InvalidAddressPrefixFormat", "Property 'properties.addressSpace.addressPrefixes' must be a non-empty list of prefixes.")
    props["addressSpace"] = {"addressPrefixes": [check_prefix(p, "properties.addressSpace.addressPrefixes") for p in space]}
    subnets = props.pop("subnets", [])
    checked = []
    for index, subnet, sub_ref in embedded(ref, subnets, "subnets", "virtualNetworks/subnets", "Subnet"):
        checked.append((sub_ref, _validate_subnet(svc, sub_ref, copy.deepcopy(props_of(subnet)), None,
                                                  vnet_prefixes=props["addressSpace"]["addressPrefixes"],
                                                  siblings=[(s.get("name"), s.get("properties", {})) for s in subnets if s is not subnet],
                                                  field=f"properties.subnets[{index}]")))
    props["_subnets"] = checked
    return props


def _validate_subnet(svc, ref, props, existing, vnet_prefixes=None, siblings=None, field="properties"):  # pylint: disable=too-many-arguments,unused-argument
    if vnet_prefixes is None:
        vnet = svc.store.get(ref.parent_id)
        vnet_prefixes = vnet["properties"]["addressSpace"]["addressPrefixes"]
        siblings = [(s["name"], s["properties"]) for s in svc.store.children(ref.parent_id, "subnets") if s["name"].lower() != ref.names[1].lower()]
    prefix = props.get("addressPrefix") or (props.get("addressPrefixes") or [None])[0]
    if prefix is None:
        raise bad_request("InvalidAddressPrefixFormat", f"Property '{field}.addressPrefix' is required.")
    prefix = check_prefix(prefix, f"{field}.addressPrefix")
    net = ipaddress.IPv4Network(prefix)
    if not any(net.subnet_of(ipaddress.IPv4Network(space)) for space in vnet_prefixes):
        raise bad_request("NetcfgSubnetRangeOutsideVnet",
                          f"Subnet '{ref.names[1]}' ({field}.addressPrefix {prefix}) is not within the address space {', '.join(vnet_prefixes)} "
                          f"of virtual network '{ref.names[0]}'.")
    for name, other in siblings:
        try:
            other_net = ipaddress.IPv4Network(other.get("addressPrefix"), strict=False)
        except (AttributeError, TypeError, ValueError):
            continue  # a malformed sibling gets its own error, naming its field
        if net.overlaps(other_net):
            raise bad_request("NetcfgSubnetRangesOverlap",
                              f"Subnet '{ref.names[1]}' ({field}.addressPrefix {prefix}) overlaps subnet '{name}' ({other_net}).")
    props["addressPrefix"] = prefix
    props.pop("addressPrefixes", None)
    for key, (type_key, _label) in SUBNET_REFERENCES.items():
        if props.get(key) is not None:
            props[key] = {"id": check_ref(svc.store, props[key], f"{field}.{key}", type_key, ref.id)}
        else:
            props.pop(key, None)
    if props.get("routeTable") and ref.names[1].lower() == "routeserversubnet":
        raise bad_request(ROUTE_TABLE_ON_ROUTE_SERVER_SUBNET, f"Property '{field}.routeTable': subnet RouteServerSubnet is Route Server's "
                                                              "own and cannot have a route table (user-defined routes are not supported "
                                                              "on RouteServerSubnet).")
    in_use = [ip for ip in subnet_ip_configurations(svc.store, ref.id) if not ipaddress.IPv4Network(ip["address"]).subnet_of(net)]
    if in_use:
        raise bad_request("InUseSubnetCannotBeDeleted", f"Subnet '{ref.names[1]}' cannot change its address prefix to {prefix}: "
                                                        f"it is in use by {in_use[0]['id']}.")
    for key in ("ipConfigurations", "id", "name", "etag", "type"):
        props.pop(key, None)
    return props


def _validate_nic(svc, ref, props, existing):  # pylint: disable=unused-argument
    props["enableIPForwarding"] = bool(check_bool(props, "enableIPForwarding", "properties.enableIPForwarding", False))
    configs = props.get("ipConfigurations")
    if not isinstance(configs, list) or not configs:
        raise bad_request("NetworkInterfaceMustHaveAtLeastOneIpConfiguration" if configs == [] else "InvalidRequestFormat",
                          "Property 'properties.ipConfigurations' must list at least one IP configuration.")
    taken = {address for ip in all_ip_configurations(svc.store) if not ip["id"].lower().startswith(ref.id.lower() + "/")
             for address in addresses_of(ip["address"])}
    # A configuration without a subnet is in the subnet of the first one that names one (as the official
    # NetworkInterfaceCreate example shows for its ipconfig2).
    named = next((c["properties"]["subnet"] for c in configs if isinstance(c, dict) and isinstance(c.get("properties"), dict)
                  and c["properties"].get("subnet") is not None), None)
    result = []
    for index, config in enumerate(configs):
        field = f"properties.ipConfigurations[{index}]"
        if not isinstance(config, dict) or not config.get("name"):
            raise bad_request("InvalidRequestFormat", f"Property '{field}.name' is required.")
        cprops = copy.deepcopy(props_of(config))
        subnet_id = check_ref(svc.store, cprops.get("subnet", named), f"{field}.properties.subnet", "virtualNetworks/subnets", ref.id)
        subnet = ipaddress.IPv4Network(svc.store.get(subnet_id)["properties"]["addressPrefix"])
        method = check_choice(cprops.get("privateIPAllocationMethod", "Static" if cprops.get("privateIPAddress") else "Dynamic"),
                              ("Static", "Dynamic"), f"{field}.properties.privateIPAllocationMethod", "InvalidRequestFormat")
        length = _prefix_length(cprops, subnet, field)
        address = cprops.get("privateIPAddress") if length is None else None
        if address:
            address = check_ipv4(address, f"{field}.properties.privateIPAddress", "InvalidPrivateIPAddress")
            if ipaddress.IPv4Address(address) not in subnet:
                raise bad_request("PrivateIPAddressNotInSubnet", f"Private IP address {address} ({field}.properties.privateIPAddress) "
                                                                 f"is not in the range of subnet {subnet_id} ({subnet}).")
            if ipaddress.IPv4Address(address) in taken:
                raise bad_request("PrivateIPAddressInUse", f"Private IP address {address} ({field}.properties.privateIPAddress) is already in use.")
        else:
            # Azure keeps the first four addresses of a subnet (and the last) for itself.
            usable = set(list(subnet.hosts())[3:])
            block = next((b for b in subnet.subnets(new_prefix=length or 32) if set(b) <= usable and not set(b) & taken), None)
            if block is None:
                raise bad_request("SubnetIsFull", f"Subnet {subnet_id} has no free {'address' if length is None else f'/{length} prefix'} for {field}.")
            address = str(block.network_address) if length is None else str(block)
        taken.update(addresses_of(address))
        entry = {"name": config["name"], "properties": {
            "privateIPAddress": address, "privateIPAllocationMethod": method, "privateIPAddressVersion": "IPv4",
            "subnet": {"id": subnet_id}, "primary": bool(cprops.get("primary", index == 0))}}
        if length is not None:
            entry["properties"]["privateIPAddressPrefixLength"] = length
        if cprops.get("publicIPAddress") is not None:
            entry["properties"]["publicIPAddress"] = {
                "id": check_ref(svc.store, cprops["publicIPAddress"], f"{field}.properties.publicIPAddress", "publicIPAddresses", ref.id)}
        result.append(entry)
    props["ipConfigurations"] = result
    # Read-only facts a NIC shows (as in the official example); the MAC is stable per NIC id.
    digest = uuid.uuid5(uuid.NAMESPACE_URL, ref.id.lower()).hex
    props["macAddress"] = "00-0D-3A-" + "-".join(digest[i:i + 2].upper() for i in range(0, 6, 2))
    dns = {"dnsServers": [], "appliedDnsServers": [], "internalDomainNameSuffix": f"{digest[:26]}.ax.internal.cloudapp.net"}
    for key, value in (("enableAcceleratedNetworking", False), ("disableTcpStateTracking", False), ("primary", True),
                       ("vnetEncryptionSupported", False), ("dnsSettings", dns)):
        props.setdefault(key, value)
    return props


def _prefix_length(cprops, subnet, field):
    """privateIPAddressPrefixLength: the configuration gets a whole prefix of the subnet (dynamic), not one address."""
    length = cprops.get("privateIPAddressPrefixLength")
    if length is None:
        return None
    if isinstance(length, bool) or not isinstance(length, int) or not subnet.prefixlen < length <= 32:
        raise bad_request("InvalidRequestFormat", f"Property '{field}.properties.privateIPAddressPrefixLength' must be an integer from "
                                                  f"{subnet.prefixlen + 1} to 32 in subnet {subnet}, got {length!r}.")
    return length


def _validate_pip(svc, ref, props, existing):  # pylint: disable=unused-argument
    props["publicIPAllocationMethod"] = check_choice(props.get("publicIPAllocationMethod", "Static"), ("Static", "Dynamic"),
                                                     "properties.publicIPAllocationMethod", "InvalidRequestFormat")
    props["publicIPAddressVersion"] = "IPv4"
    props.setdefault("idleTimeoutInMinutes", 4)
    if existing is not None:
        props["ipAddress"] = existing["properties"].get("ipAddress")
    else:
        used = {body["properties"].get("ipAddress") for body in svc.store.find(lambda b: b["type"] == arm_type("publicIPAddresses"))}
        # Documentation range (RFC 5737 TEST-NET-2): these addresses exist only inside the emulator.
        props["ipAddress"] = next(str(ip) for ip in ipaddress.IPv4Network("198.51.100.0/24").hosts() if str(ip) not in used)
    props.pop("ipConfiguration", None)
    return props


def _validate_route_table(svc, ref, props, existing):  # pylint: disable=unused-argument
    props["disableBgpRoutePropagation"] = bool(check_bool(props, "disableBgpRoutePropagation", "properties.disableBgpRoutePropagation", False))
    routes = props.pop("routes", [])
    if isinstance(routes, list) and len(routes) > MAX_ROUTES:
        raise bad_request(ROUTE_LIMIT_REACHED, f"Property 'properties.routes' lists {len(routes)} routes; a route table holds at most {MAX_ROUTES}.")
    checked = []
    for index, route, route_ref in embedded(ref, routes, "routes", "routeTables/routes", "Route"):
        checked.append((route_ref, _validate_route(svc, route_ref, copy.deepcopy(props_of(route)), None, f"properties.routes[{index}].properties")))
    props.pop("subnets", None)
    props["_routes"] = checked
    return props


def _validate_child_route(svc, ref, props, existing):
    """routeTables/{t}/routes/{r}: one more route counts against the table's limit."""
    others = [r for r in svc.store.children(ref.parent_id, "routes") if r["name"].lower() != ref.names[1].lower()]
    if existing is None and len(others) >= MAX_ROUTES:
        raise bad_request(ROUTE_LIMIT_REACHED, f"Route table {ref.names[0]} already has {len(others)} routes; a route table holds at most {MAX_ROUTES}.")
    return _validate_route(svc, ref, props, existing)


def _validate_route(svc, ref, props, existing, field="properties"):  # pylint: disable=unused-argument
    result = {"addressPrefix": check_prefix(props.get("addressPrefix"), f"{field}.addressPrefix")}
    hop = props.get("nextHopType")
    if hop is None:
        raise bad_request("InvalidRequestFormat", f"Property '{field}.nextHopType' is required.")
    result["nextHopType"] = check_choice(hop, NEXT_HOP_TYPES, f"{field}.nextHopType", "InvalidNextHopType")
    address = props.get("nextHopIpAddress")
    if result["nextHopType"] == "VirtualAppliance":
        if not address:
            raise bad_request("MissingNextHopIpAddress", f"NextHopIpAddress cannot be Null or Empty in route {ref.names[1]} when NextHopType is "
                                                         f"VirtualAppliance (property '{field}.nextHopIpAddress').")
        result["nextHopIpAddress"] = check_ipv4(address, f"{field}.nextHopIpAddress", "InvalidNextHopIpAddress")
    elif address:
        raise bad_request("NextHopIpAddressNotAllowed", f"Property '{field}.nextHopIpAddress' is only allowed when nextHopType is VirtualAppliance "
                                                        f"(route {ref.names[1]} has {result['nextHopType']}).")
    return result


_VALIDATORS = {
    "virtualNetworks": _validate_vnet,
    "virtualNetworks/subnets": _validate_subnet,
    "networkInterfaces": _validate_nic,
    "publicIPAddresses": _validate_pip,
    "virtualHubs": validate_hub,
    "virtualHubs/ipConfigurations": validate_hub_ipconfig,
    "virtualHubs/bgpConnections": validate_bgp,
    "routeTables": _validate_route_table,
    "routeTables/routes": _validate_child_route,
    "networkSecurityGroups": validate_nsg,
    "networkSecurityGroups/securityRules": validate_child_rule,
}


def check_delete(svc, ref, body):
    """Refuse deleting what is still referenced, as Azure does."""
    if ref.type_key == "routeTables":
        users = subnets_using(svc.store, body["id"])
        if users:
            raise bad_request("InUseRouteTableCannotBeDeleted", f"Route table {body['id']} is in use by subnet {users[0]} and cannot be deleted. "
                                                                "Dissociate it from all subnets first.")
    if ref.type_key == "networkSecurityGroups":
        users = subnets_using(svc.store, body["id"], "networkSecurityGroup")
        if users:
            raise bad_request("InUseNetworkSecurityGroupCannotBeDeleted", f"Network security group {body['id']} cannot be deleted because it is in "
                                                                          f"use by the following resources: {', '.join(users)}. In order to delete "
                                                                          "the Network security group, remove the association with the resource(s).")
    if ref.type_key == "virtualNetworks/subnets":
        users = subnet_ip_configurations(svc.store, body["id"])
        if users:
            raise bad_request("InUseSubnetCannotBeDeleted", f"Subnet {ref.names[1]} is in use by {users[0]['id']} and cannot be deleted.")
    if ref.type_key == "virtualNetworks":
        for subnet in svc.store.children(body["id"], "subnets"):
            check_delete(svc, id_ref(subnet["id"]), subnet)
    if ref.type_key == "publicIPAddresses":
        users = [ip["id"] for ip in all_ip_configurations(svc.store) if ip.get("public_ip", "").lower() == body["id"].lower()]
        if users:
            raise bad_request("PublicIPAddressCannotBeDeleted", f"Public IP address {body['id']} is in use by {users[0]} and cannot be deleted.")
