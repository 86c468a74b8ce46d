"""Microsoft.Network resource types: path grammar, body validation, rendering.

Every resource (children too: subnets, routes, hub ipConfigurations, bgpConnections)
is stored flat under its lower-cased id. Embedded children and back-references
(VNet.subnets, routeTable.routes, routeTable.subnets, subnet.ipConfigurations,
hub.bgpConnections...) are computed when a body is rendered, so they are always
consistent. Shapes follow the official 2025-07-01 examples.
"""
import copy
import ipaddress
import uuid

from .errors import ArmError, bad_request

PROVIDER = "Microsoft.Network"
# ARM type name -> (parent type or None, name of the ARM type for bodies).
TYPES = {
    "virtualNetworks": None,
    "virtualNetworks/subnets": "virtualNetworks",
    "networkInterfaces": None,
    "publicIPAddresses": None,
    "virtualHubs": None,
    "virtualHubs/ipConfigurations": "virtualHubs",
    "virtualHubs/bgpConnections": "virtualHubs",
    "routeTables": None,
    "routeTables/routes": "routeTables",
}
_CANONICAL = {key.lower(): key for key in TYPES}
NEXT_HOP_TYPES = ("VirtualNetworkGateway", "VnetLocal", "Internet", "VirtualAppliance", "None")
HUB_ROUTING_PREFERENCES = ("ExpressRoute", "VpnGateway", "ASPath")
# ASNs Azure keeps for itself; a BGP peer may not use them.
RESERVED_ASNS = [(8074, 8075), (12076, 12076), (23456, 23456), (64496, 64511), (65515, 65515), (65517, 65520), (65535, 65551)]
MAX_BGP_CONNECTIONS = 8


class Ref:  # pylint: disable=too-few-public-methods
    """A parsed resource address: subscription, resource group, type and names."""

    def __init__(self, sub, rg, type_key, names):
        self.sub, self.rg, self.type_key, self.names = sub, rg, type_key, names
        parts = type_key.split("/")
        path = "/".join(f"{part}/{name}" for part, name in zip(parts, names))
        self.group_id = f"/subscriptions/{sub}/resourceGroups/{rg}"
        self.id = f"{self.group_id}/providers/{PROVIDER}/{path}" if len(names) == len(parts) else None
        self.collection = len(names) < len(parts)
        self.parent_id = None
        if len(parts) == 2:
            self.parent_id = f"{self.group_id}/providers/{PROVIDER}/{parts[0]}/{names[0]}"

    @property
    def top_id(self):
        """The top-level resource (a VNet for a subnet, a hub for a bgpConnection)."""
        return self.parent_id or self.id


def parse_provider_path(sub, rg, segments):
    """segments after providers/Microsoft.Network/ -> (Ref, action) or None when unknown."""
    if not segments:
        return None
    top = _CANONICAL.get(segments[0].lower())
    if top is None or TYPES[top] is not None:
        return None
    if len(segments) <= 2:
        return Ref(sub, rg, top, segments[1:2]), None
    child = _CANONICAL.get(f"{top}/{segments[2]}".lower())
    if child is None:
        return None
    if len(segments) <= 4:
        return Ref(sub, rg, child, [segments[1]] + segments[3:4]), None
    if len(segments) == 5 and child == "virtualHubs/bgpConnections" and segments[4].lower() in ("learnedroutes", "advertisedroutes"):
        action = "learned" if segments[4].lower() == "learnedroutes" else "advertised"
        return Ref(sub, rg, child, [segments[1], segments[3]]), action
    return None


def id_ref(resource_id):
    """Parse a full resource id given inside a body (subnet.id, routeTable.id ...); None if malformed."""
    parts = resource_id.strip("/").split("/")
    if len(parts) < 8 or parts[0].lower() != "subscriptions" or parts[2].lower() != "resourcegroups" \
            or parts[4].lower() != "providers" or parts[5].lower() != PROVIDER.lower():
        return None
    parsed = parse_provider_path(parts[1], parts[3], parts[6:])
    if parsed is None or parsed[1] is not None or parsed[0].collection:
        return None
    return parsed[0]


def arm_type(type_key):
    return f"{PROVIDER}/{type_key}"


def new_etag():
    return f'W/"{uuid.uuid4()}"'


# ---------------------------------------------------------------- field checks
def _props(body):
    props = body.get("properties", {})
    if not isinstance(props, dict):
        raise bad_request("InvalidRequestFormat", "Property 'properties' must be an object.")
    return props


def check_ipv4(value, field, code="InvalidIPAddress"):
    try:
        if not isinstance(value, str):  # ipaddress would take an integer
            raise TypeError(value)
        return str(ipaddress.IPv4Address(value))
    except (ipaddress.AddressValueError, ValueError, TypeError) as exc:
        raise bad_request(code, f"Value '{value}' of property '{field}' is not a valid IPv4 address.") from exc


def check_prefix(value, field, code="InvalidAddressPrefixFormat"):
    try:
        if not isinstance(value, str):
            raise TypeError(value)
        net = ipaddress.IPv4Network(value, strict=True)
    except (ipaddress.AddressValueError, ipaddress.NetmaskValueError, ValueError, TypeError) as exc:
        raise bad_request(code, f"Value '{value}' of property '{field}' is not a valid IPv4 address prefix in CIDR notation "
                                "(host bits must be zero).") from exc
    return str(net)


def check_bool(props, key, field, default=None):
    value = props.get(key, default)
    if value is not None and not isinstance(value, bool):
        raise bad_request("InvalidRequestFormat", f"Property '{field}' must be a boolean, got {value!r}.")
    return value


def check_choice(value, choices, field, code):
    if value is None:
        return None
    match = next((choice for choice in choices if isinstance(value, str) and choice.lower() == value.lower()), None)
    if match is None:
        raise bad_request(code, f"Value '{value}' of property '{field}' is invalid. Allowed values: {', '.join(choices)}.")
    return match


def check_ref(store, value, field, type_key, owner_id):
    """A {"id": ...} reference to an existing resource of type_key; returns the canonical stored id."""
    if not isinstance(value, dict) or not isinstance(value.get("id"), str):
        raise bad_request("InvalidRequestFormat", f"Property '{field}' must be an object with an 'id'.")
    ref = id_ref(value["id"])
    target = store.get(value["id"]) if ref and ref.type_key == type_key else None
    if target is None:
        raise bad_request("InvalidResourceReference", f"Resource {value['id']} referenced by resource {owner_id} was not found. "
                                                      f"Property '{field}' must reference an existing {arm_type(type_key)}.")
    return target["id"]


def reserved_asn(asn):
    return any(low <= asn <= high for low, high in RESERVED_ASNS)


# ---------------------------------------------------------------- validation per type
def validate(svc, ref, body, existing):
    """Check a PUT body; return the properties to store (raises ArmError 400 naming the field)."""
    if not isinstance(body, dict):
        raise bad_request("InvalidRequestContent", "The request content was invalid and could not be deserialized: the body must be a JSON object.")
    props = copy.deepcopy(_props(body))
    props.pop("provisioningState", None)
    return _VALIDATORS[ref.type_key](svc, ref, props, existing)


def _validate_vnet(svc, ref, props, existing):  # pylint: disable=unused-argument
    space = props.get("addressSpace", {}).get("addressPrefixes") if isinstance(props.get("addressSpace"), dict) else None
    if not isinstance(space, list) or not space:
        raise bad_request("InvalidAddressPrefixFormat", "Property 'properties.addressSpace.addressPrefixes' must be a non-empty list of prefixes.")
    props["addressSpace"] = {"addressPrefixes": [check_prefix(p, "properties.addressSpace.addressPrefixes") for p in space]}
    subnets = props.pop("subnets", [])
    if not isinstance(subnets, list):
        raise bad_request("InvalidRequestFormat", "Property 'properties.subnets' must be a list.")
    checked, names = [], set()
    for index, subnet in enumerate(subnets):
        if not isinstance(subnet, dict) or not subnet.get("name"):
            raise bad_request("InvalidRequestFormat", f"Property 'properties.subnets[{index}].name' is required.")
        if subnet["name"].lower() in names:
            raise bad_request("DuplicateResourceName", f"Subnet name '{subnet['name']}' appears twice in 'properties.subnets'.")
        names.add(subnet["name"].lower())
        sub_ref = Ref(ref.sub, ref.rg, "virtualNetworks/subnets", [ref.names[0], subnet["name"]])
        checked.append((sub_ref, _validate_subnet(svc, sub_ref, copy.deepcopy(_props(subnet)), None,
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
    if props.get("routeTable") is not None:
        props["routeTable"] = {"id": check_ref(svc.store, props["routeTable"], f"{field}.routeTable", "routeTables", ref.id)}
    else:
        props.pop("routeTable", None)
    in_use = [ip for ip in _subnet_ip_configurations(svc.store, ref.id) if ipaddress.IPv4Address(ip["address"]) not in net]
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
    taken = {ip["address"] for ip in _all_ip_configurations(svc.store) if not ip["id"].lower().startswith(ref.id.lower() + "/")}
    result = []
    for index, config in enumerate(configs):
        field = f"properties.ipConfigurations[{index}]"
        if not isinstance(config, dict) or not config.get("name"):
            raise bad_request("InvalidRequestFormat", f"Property '{field}.name' is required.")
        cprops = copy.deepcopy(_props(config))
        subnet_id = check_ref(svc.store, cprops.get("subnet"), f"{field}.properties.subnet", "virtualNetworks/subnets", ref.id)
        subnet = ipaddress.IPv4Network(svc.store.get(subnet_id)["properties"]["addressPrefix"])
        method = check_choice(cprops.get("privateIPAllocationMethod", "Static" if cprops.get("privateIPAddress") else "Dynamic"),
                              ("Static", "Dynamic"), f"{field}.properties.privateIPAllocationMethod", "InvalidRequestFormat")
        address = cprops.get("privateIPAddress")
        if address:
            address = check_ipv4(address, f"{field}.properties.privateIPAddress", "InvalidPrivateIPAddress")
            if ipaddress.IPv4Address(address) not in subnet:
                raise bad_request("PrivateIPAddressNotInSubnet", f"Private IP address {address} ({field}.properties.privateIPAddress) "
                                                                 f"is not in the range of subnet {subnet_id} ({subnet}).")
            if address in taken:
                raise bad_request("PrivateIPAddressInUse", f"Private IP address {address} ({field}.properties.privateIPAddress) is already in use.")
        else:
            # Azure keeps the first four addresses of a subnet (and the last) for itself.
            address = next((str(host) for host in list(subnet.hosts())[3:-1] if str(host) not in taken), None)
            if address is None:
                raise bad_request("SubnetIsFull", f"Subnet {subnet_id} has no free address for {field}.")
        taken.add(address)
        entry = {"name": config["name"], "properties": {
            "privateIPAddress": address, "privateIPAllocationMethod": method, "privateIPAddressVersion": "IPv4",
            "subnet": {"id": subnet_id}, "primary": bool(cprops.get("primary", index == 0))}}
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


def _validate_hub(svc, ref, props, existing):  # pylint: disable=unused-argument
    previous = existing["properties"] if existing else {}
    props["sku"] = check_choice(props.get("sku", previous.get("sku", "Standard")), ("Standard", "Basic"), "properties.sku", "InvalidVirtualHubSku")
    asn = props.get("virtualRouterAsn", 65515)
    if asn != 65515:
        raise bad_request("InvalidVirtualRouterAsn", f"Property 'properties.virtualRouterAsn' is {asn!r}; a Route Server always uses ASN 65515.")
    props["virtualRouterAsn"] = 65515
    props["allowBranchToBranchTraffic"] = bool(check_bool(props, "allowBranchToBranchTraffic", "properties.allowBranchToBranchTraffic", False))
    props["hubRoutingPreference"] = check_choice(props.get("hubRoutingPreference", "ExpressRoute"), HUB_ROUTING_PREFERENCES,
                                                 "properties.hubRoutingPreference", "InvalidHubRoutingPreference")
    props["preferredRoutingGateway"] = "VpnGateway" if props["hubRoutingPreference"] == "VpnGateway" else "ExpressRoute"
    if props.get("addressPrefix"):
        props["addressPrefix"] = check_prefix(props["addressPrefix"], "properties.addressPrefix")
    # Read-only, computed by the "service": never taken from the client.
    for key in ("virtualRouterIps", "routingState", "bgpConnections", "ipConfigurations"):
        props.pop(key, None)
    props["virtualRouterIps"] = previous.get("virtualRouterIps", [])
    props.setdefault("virtualRouterAutoScaleConfiguration", {"minCapacity": 2})
    return props


def _validate_hub_ipconfig(svc, ref, props, existing):  # pylint: disable=unused-argument
    subnet_id = check_ref(svc.store, props.get("subnet"), "properties.subnet", "virtualNetworks/subnets", ref.id)
    if id_ref(subnet_id).names[1] != "RouteServerSubnet":
        raise bad_request("InvalidVirtualHubIpConfigurationSubnet",
                          f"Property 'properties.subnet' must reference a subnet named 'RouteServerSubnet', got {subnet_id}.")
    others = [c for c in svc.store.children(ref.parent_id, "ipConfigurations") if c["name"].lower() != ref.names[1].lower()]
    if others:
        raise bad_request("VirtualHubIpConfigurationLimitReached", f"Virtual hub '{ref.names[0]}' already has IP configuration '{others[0]['name']}'.")
    taken = [ip["id"] for ip in _subnet_ip_configurations(svc.store, subnet_id) if not ip["id"].lower().startswith(ref.parent_id.lower() + "/")]
    if taken:
        raise bad_request("SubnetInUseByAnotherVirtualHub", f"Subnet {subnet_id} (property 'properties.subnet') is already used by {taken[0]}.")
    subnet = ipaddress.IPv4Network(svc.store.get(subnet_id)["properties"]["addressPrefix"])
    if subnet.prefixlen > 27:
        raise bad_request("RouteServerSubnetTooSmall", f"Subnet {subnet_id} ({subnet}) is smaller than the /27 a Route Server needs.")
    result = {"subnet": {"id": subnet_id}, "privateIPAllocationMethod": "Dynamic", "privateIPAddress": str(subnet.network_address + 4)}
    if props.get("publicIPAddress") is not None:
        result["publicIPAddress"] = {"id": check_ref(svc.store, props["publicIPAddress"], "properties.publicIPAddress", "publicIPAddresses", ref.id)}
    return result


def _validate_bgp(svc, ref, props, existing):
    hub = svc.store.get(ref.parent_id)
    if routing_state(svc, hub) != "Provisioned":
        raise bad_request("HubBgpConnectionParentHubMustHaveProvisionedRoutingState",
                          f"Bgp connection {ref.names[1]} cannot be created or updated because the parent virtual hub {ref.names[0]} "
                          f"has routing state {routing_state(svc, hub)}; it must be Provisioned. Retry later.")
    peer_ip = check_ipv4(props.get("peerIp"), "properties.peerIp", "InvalidBgpConnectionPeerIp")
    asn = props.get("peerAsn")
    if isinstance(asn, bool) or not isinstance(asn, int) or not 1 <= asn <= 4294967295:
        raise bad_request("InvalidBgpConnectionPeerAsn", f"Property 'properties.peerAsn' must be an integer 1-4294967295, got {asn!r}.")
    if reserved_asn(asn):
        raise bad_request("BgpConnectionPeerAsnIsReserved", f"Property 'properties.peerAsn' {asn} is reserved by Azure and cannot be used by a BGP peer.")
    if existing is not None:
        before = existing["properties"]
        for key, value in (("peerIp", peer_ip), ("peerAsn", asn)):
            if before.get(key) != value:
                raise bad_request("PropertyChangeNotAllowed", f"Changing property 'properties.{key}' of bgp connection {ref.names[1]} is not allowed "
                                                              f"({before.get(key)!r} -> {value!r}); delete the connection and create it again.")
    peers = [c for c in svc.store.children(ref.parent_id, "bgpConnections") if c["name"].lower() != ref.names[1].lower()]
    clash = next((c for c in peers if c["properties"].get("peerIp") == peer_ip), None)
    if clash is not None:
        raise bad_request("BgpConnectionPeerIpAlreadyInUse", f"Property 'properties.peerIp' {peer_ip} is already used by bgp connection {clash['name']}.")
    if existing is None and len(peers) >= MAX_BGP_CONNECTIONS:
        raise bad_request("VirtualHubBgpConnectionLimitReached", f"Virtual hub {ref.names[0]} already has {len(peers)} bgp connections; "
                                                                 f"a Route Server supports at most {MAX_BGP_CONNECTIONS}.")
    result = {"peerIp": peer_ip, "peerAsn": asn, "connectionState": existing["properties"]["connectionState"] if existing else "Connecting"}
    if props.get("hubVirtualNetworkConnection") is not None:
        result["hubVirtualNetworkConnection"] = props["hubVirtualNetworkConnection"]
    return result


def _validate_route_table(svc, ref, props, existing):  # pylint: disable=unused-argument
    props["disableBgpRoutePropagation"] = bool(check_bool(props, "disableBgpRoutePropagation", "properties.disableBgpRoutePropagation", False))
    routes = props.pop("routes", [])
    if not isinstance(routes, list):
        raise bad_request("InvalidRequestFormat", "Property 'properties.routes' must be a list.")
    checked, names = [], set()
    for index, route in enumerate(routes):
        if not isinstance(route, dict) or not route.get("name"):
            raise bad_request("InvalidRequestFormat", f"Property 'properties.routes[{index}].name' is required.")
        if route["name"].lower() in names:
            raise bad_request("DuplicateResourceName", f"Route name '{route['name']}' appears twice in 'properties.routes'.")
        names.add(route["name"].lower())
        route_ref = Ref(ref.sub, ref.rg, "routeTables/routes", [ref.names[0], route["name"]])
        checked.append((route_ref, _validate_route(svc, route_ref, copy.deepcopy(_props(route)), None, f"properties.routes[{index}].properties")))
    props.pop("subnets", None)
    props["_routes"] = checked
    return props


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
    "virtualHubs": _validate_hub,
    "virtualHubs/ipConfigurations": _validate_hub_ipconfig,
    "virtualHubs/bgpConnections": _validate_bgp,
    "routeTables": _validate_route_table,
    "routeTables/routes": _validate_route,
}


def check_delete(svc, ref, body):
    """Refuse deleting what is still referenced, as Azure does."""
    if ref.type_key == "routeTables":
        users = subnets_using(svc.store, body["id"])
        if users:
            raise bad_request("InUseRouteTableCannotBeDeleted", f"Route table {body['id']} is in use by subnet {users[0]} and cannot be deleted. "
                                                                "Dissociate it from all subnets first.")
    if ref.type_key == "virtualNetworks/subnets":
        users = _subnet_ip_configurations(svc.store, body["id"])
        if users:
            raise bad_request("InUseSubnetCannotBeDeleted", f"Subnet {ref.names[1]} is in use by {users[0]['id']} and cannot be deleted.")
    if ref.type_key == "virtualNetworks":
        for subnet in svc.store.children(body["id"], "subnets"):
            check_delete(svc, id_ref(subnet["id"]), subnet)
    if ref.type_key == "publicIPAddresses":
        users = [ip["id"] for ip in _all_ip_configurations(svc.store) if ip.get("public_ip", "").lower() == body["id"].lower()]
        if users:
            raise bad_request("PublicIPAddressCannotBeDeleted", f"Public IP address {body['id']} is in use by {users[0]} and cannot be deleted.")


# ---------------------------------------------------------------- back-references
def _all_ip_configurations(store):
    """Every IP configuration that holds an address in a subnet: NIC ipconfigs and hub ipconfigs."""
    found = []
    for body in store.data["resources"].values():
        if body["type"] == arm_type("networkInterfaces"):
            for config in body["properties"]["ipConfigurations"]:
                found.append({"id": f"{body['id']}/ipConfigurations/{config['name']}", "subnet": config["properties"]["subnet"]["id"],
                              "address": config["properties"]["privateIPAddress"],
                              "public_ip": config["properties"].get("publicIPAddress", {}).get("id", "")})
        elif body["type"] == arm_type("virtualHubs/ipConfigurations"):
            found.append({"id": body["id"], "subnet": body["properties"]["subnet"]["id"], "address": body["properties"]["privateIPAddress"],
                          "public_ip": body["properties"].get("publicIPAddress", {}).get("id", "")})
    return found


def _subnet_ip_configurations(store, subnet_id):
    return [ip for ip in _all_ip_configurations(store) if ip["subnet"].lower() == (subnet_id or "").lower()]


def subnets_using(store, route_table_id):
    return [body["id"] for body in store.find(lambda b: b["type"] == arm_type("virtualNetworks/subnets")
                                              and b["properties"].get("routeTable", {}).get("id", "").lower() == route_table_id.lower())]


def routing_state(svc, hub):
    """Provisioning for a while after the hub or its ipConfiguration is provisioned; then Provisioned
    when the hub has an ipConfiguration (its router instances), else None."""
    if hub["properties"].get("provisioningState") == "Failed":
        return "Failed"
    ready_at = hub.get("_emu", {}).get("routing_ready_at")
    if ready_at is not None and svc.clock() < ready_at:
        return "Provisioning"
    return "Provisioned" if svc.store.children(hub["id"], "ipConfigurations") else "None"


# ---------------------------------------------------------------- rendering
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
        configs = _subnet_ip_configurations(store, body["id"])
        if configs:
            props["ipConfigurations"] = [{"id": ip["id"]} for ip in configs]
    elif type_key == "routeTables":
        props["routes"] = [render(svc, child) for child in store.children(body["id"], "routes")]
        users = subnets_using(store, body["id"])
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
        user = next((ip["id"] for ip in _all_ip_configurations(store) if ip["public_ip"].lower() == body["id"].lower()), None)
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
