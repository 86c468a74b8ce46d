"""Validation of a Route Server's resources: the hub (virtualHubs), its ipConfiguration and its BGP peers
(bgpConnections), with the addresses a peer may have. validation.py calls these for the three types."""
import ipaddress

from .addressing import id_ref
from .errors import bad_request
from .fields import check_bool, check_choice, check_ipv4, check_prefix, check_ref, reserved_asn
from .usage import routing_state, subnet_ip_configurations

HUB_ROUTING_PREFERENCES = ("ExpressRoute", "VpnGateway", "ASPath")
MAX_BGP_CONNECTIONS = 8
# Codes the emulator chose where ARM's own could not be found (Azure REST API docs, azure-sdk-for-python, azure-cli and
# terraform-provider-azurerm issues quote none): a BGP peer at an address no NVA can have.
PEER_IS_ROUTE_SERVER = "BgpConnectionPeerIpIsVirtualRouterIp"
PEER_IN_ROUTE_SERVER_SUBNET = "BgpConnectionPeerIpInRouteServerSubnet"
PEER_AT_RESERVED_ADDRESS = "BgpConnectionPeerIpIsSubnetReservedAddress"
PEER_IN_NO_SUBNET = "BgpConnectionPeerIpNotInVirtualNetworkSubnet"


def validate_hub(svc, ref, props, existing):  # pylint: disable=unused-argument
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


def validate_hub_ipconfig(svc, ref, props, existing):  # pylint: disable=unused-argument
    subnet_id = check_ref(svc.store, props.get("subnet"), "properties.subnet", "virtualNetworks/subnets", ref.id)
    if id_ref(subnet_id).names[1] != "RouteServerSubnet":
        raise bad_request("InvalidVirtualHubIpConfigurationSubnet",
                          f"Property 'properties.subnet' must reference a subnet named 'RouteServerSubnet', got {subnet_id}.")
    others = [c for c in svc.store.children(ref.parent_id, "ipConfigurations") if c["name"].lower() != ref.names[1].lower()]
    if others:
        raise bad_request("VirtualHubIpConfigurationLimitReached", f"Virtual hub '{ref.names[0]}' already has IP configuration '{others[0]['name']}'.")
    taken = [ip["id"] for ip in subnet_ip_configurations(svc.store, subnet_id) if not ip["id"].lower().startswith(ref.parent_id.lower() + "/")]
    if taken:
        raise bad_request("SubnetInUseByAnotherVirtualHub", f"Subnet {subnet_id} (property 'properties.subnet') is already used by {taken[0]}.")
    subnet = ipaddress.IPv4Network(svc.store.get(subnet_id)["properties"]["addressPrefix"])
    if subnet.prefixlen > 27:
        raise bad_request("RouteServerSubnetTooSmall", f"Subnet {subnet_id} ({subnet}) is smaller than the /27 a Route Server needs.")
    result = {"subnet": {"id": subnet_id}, "privateIPAllocationMethod": "Dynamic", "privateIPAddress": str(subnet.network_address + 4)}
    if props.get("publicIPAddress") is not None:
        result["publicIPAddress"] = {"id": check_ref(svc.store, props["publicIPAddress"], "properties.publicIPAddress", "publicIPAddresses", ref.id)}
    return result


def validate_bgp(svc, ref, props, existing):
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
    if existing is None:
        _check_peer_address(svc, hub, peer_ip)
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


def _peered_vnets(svc, vnet):
    """The VNets directly peered with vnet (peering Connected) that the emulator holds."""
    found = []
    for peering in vnet["properties"].get("virtualNetworkPeerings") or []:
        peering = peering.get("properties", {}) if isinstance(peering, dict) else {}
        remote = peering.get("remoteVirtualNetwork") or {}
        body = svc.store.get(remote["id"]) if peering.get("peeringState") == "Connected" and isinstance(remote.get("id"), str) else None
        if body is not None:
            found.append(body)
    return found


def _check_peer_address(svc, hub, peer_ip):
    """Route Server peers with NVAs in its own VNet and in VNets directly peered with it; an address no NVA there can
    have is refused, in the order the collection's route_server_peer checks it."""
    address = ipaddress.IPv4Address(peer_ip)
    router_ips = hub["properties"].get("virtualRouterIps") or []
    if peer_ip in router_ips:
        raise bad_request(PEER_IS_ROUTE_SERVER, f"Property 'properties.peerIp' {peer_ip} is an address of the Route Server itself ({', '.join(router_ips)}).")
    route_server_subnet = svc.store.children(hub["id"], "ipConfigurations")[0]["properties"]["subnet"]["id"]
    hub_vnet = svc.store.get(id_ref(route_server_subnet).parent_id)
    vnet = next((v for v in [hub_vnet] + _peered_vnets(svc, hub_vnet)
                 if any(address in ipaddress.IPv4Network(p) for p in v["properties"]["addressSpace"]["addressPrefixes"])), None)
    if vnet is None:
        raise bad_request(PEER_IN_NO_SUBNET, f"Property 'properties.peerIp' {peer_ip} is outside virtual network {hub_vnet['name']} "
                                             f"({', '.join(hub_vnet['properties']['addressSpace']['addressPrefixes'])}) and outside every "
                                             "virtual network directly peered with it (peering Connected).")
    subnet = next((s for s in svc.store.children(vnet["id"], "subnets") if address in ipaddress.IPv4Network(s["properties"]["addressPrefix"])), None)
    if subnet is None:
        raise bad_request(PEER_IN_NO_SUBNET, f"Property 'properties.peerIp' {peer_ip} is in no subnet of virtual network {vnet['name']}.")
    prefix = ipaddress.IPv4Network(subnet["properties"]["addressPrefix"])
    if subnet["id"].lower() == route_server_subnet.lower():
        raise bad_request(PEER_IN_ROUTE_SERVER_SUBNET, f"Property 'properties.peerIp' {peer_ip} is inside RouteServerSubnet ({prefix}), "
                                                       "which only the Route Server may use.")
    if address < prefix.network_address + 4 or address == prefix.broadcast_address:
        raise bad_request(PEER_AT_RESERVED_ADDRESS, f"Property 'properties.peerIp' {peer_ip} is one of the five addresses Azure keeps in "
                                                    f"subnet {subnet['name']} ({prefix}): the first four and the last.")
