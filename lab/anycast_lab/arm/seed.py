"""Load a topology (tenant, service principal, resource groups, VNets, NICs, Route Servers ...).

Every resource goes through the same validation as an ARM PUT (Service.apply_put with
immediate=True), so a seed cannot create what ARM would refuse. A seed is all or nothing:
on any error the state is left as it was and the error names the field.

Topology keys (all optional except what a resource needs):
  tenant_id, subscription_id, client_id, client_secret   one service principal (shorthand)
  service_principals: [{tenant_id, client_id, client_secret}]
  subscriptions: [{subscription_id, tenant_id, display_name}]
  resource_groups: [{name, location}]
  public_ip_addresses: [{resource_group, name, location?}]
  route_tables: [{resource_group, name, disable_bgp_route_propagation?, routes: [{name, address_prefix, next_hop_type, next_hop_ip?}]}]
  virtual_networks: [{resource_group, name, address_prefixes, subnets: [{name, address_prefix, route_table?}]}]
  network_interfaces: [{resource_group, name, vnet, subnet, private_ip?, enable_ip_forwarding?}]
  route_servers: [{resource_group, name, vnet, public_ip?, allow_branch_to_branch?, hub_routing_preference?,
                   routing_ready?: true, peers: [{name, peer_ip, peer_asn}]}]
  routes: {"hub/connection": {"learned": {...}, "advertised": {...}}}
  resources: [{"id": full ARM id, "body": ARM PUT body}]     raw ARM bodies, applied last
"""
import copy

from .addressing import TYPES, id_ref
from .errors import bad_request

NET = "providers/Microsoft.Network"


def _need(item, key, where):
    if not isinstance(item, dict) or item.get(key) in (None, ""):
        raise bad_request("InvalidSeed", f"{where}.{key} is required.")
    return item[key]


def apply(service, topology):
    """Apply a topology atomically; return {subscription_id, tenant_id, created: [ids]}."""
    if not isinstance(topology, dict):
        raise bad_request("InvalidSeed", "The seed body must be a JSON object.")
    store = service.store
    with store.lock:
        snapshot = copy.deepcopy(store.data)
        try:
            created = _apply(service, topology)
        except Exception:
            store.data = snapshot
            raise
        store.save()
    service.notify("SEED", "/_emulator/seed")
    return {"subscription_id": topology.get("subscription_id"), "tenant_id": topology.get("tenant_id"), "created": created}


def _apply(service, topo):  # pylint: disable=too-many-locals
    store = service.store
    principals = list(topo.get("service_principals", []))
    if topo.get("client_id"):
        principals.append({key: topo.get(key) for key in ("tenant_id", "client_id", "client_secret")})
    for index, principal in enumerate(principals):
        for key in ("tenant_id", "client_id", "client_secret"):
            _need(principal, key, f"service_principals[{index}]")
        store.data["service_principals"] = [sp for sp in store.data["service_principals"]
                                            if sp["client_id"].lower() != principal["client_id"].lower()
                                            or sp["tenant_id"].lower() != principal["tenant_id"].lower()] + [dict(principal)]
    subscriptions = list(topo.get("subscriptions", []))
    if topo.get("subscription_id"):
        subscriptions.append({"subscription_id": topo["subscription_id"], "tenant_id": _need(topo, "tenant_id", "seed")})
    for index, sub in enumerate(subscriptions):
        sub_id = _need(sub, "subscription_id", f"subscriptions[{index}]")
        entry = store.data["subscriptions"].setdefault(sub_id.lower(), {"id": sub_id, "resource_groups": {}})
        entry["tenant_id"] = _need(sub, "tenant_id", f"subscriptions[{index}]")
        entry["display_name"] = sub.get("display_name", "anycast lab")
    sub_id = topo.get("subscription_id") or (subscriptions[0]["subscription_id"] if subscriptions else None)
    created = []

    def group_of(item, where):
        name = _need(item, "resource_group", where)
        group = store.resource_group(sub_id or "", name)
        if group is None:
            raise bad_request("InvalidSeed", f"{where}.resource_group '{name}' is not in resource_groups (or no subscription_id was given).")
        return group

    def put(type_path, group, name, body, where):
        ref = id_ref(f"/subscriptions/{sub_id}/resourceGroups/{group['name']}/{NET}/{type_path}/{name}")
        if ref is None:
            raise bad_request("InvalidSeed", f"{where}.name '{name}' does not make a valid resource id.")
        if TYPES[ref.type_key] is None:
            body.setdefault("location", group["location"])
        service.apply_put(ref, body, immediate=True)
        created.append(ref.id)
        return ref.id

    def rid(group, type_path):
        return f"/subscriptions/{sub_id}/resourceGroups/{group['name']}/{NET}/{type_path}"

    for index, group in enumerate(topo.get("resource_groups", [])):
        if sub_id is None:
            raise bad_request("InvalidSeed", "resource_groups need a subscription_id.")
        name = _need(group, "name", f"resource_groups[{index}]")
        location = _need(group, "location", f"resource_groups[{index}]")
        store.subscription(sub_id)["resource_groups"][name.lower()] = {"name": name, "location": location, "tags": group.get("tags", {})}
    for index, pip in enumerate(topo.get("public_ip_addresses", [])):
        where = f"public_ip_addresses[{index}]"
        put("publicIPAddresses", group_of(pip, where), _need(pip, "name", where),
            {"sku": {"name": "Standard"}, "properties": {"publicIPAllocationMethod": "Static"}}, where)
    for index, table in enumerate(topo.get("route_tables", [])):
        where = f"route_tables[{index}]"
        routes = [{"name": _need(r, "name", f"{where}.routes[{i}]"),
                   "properties": {k: v for k, v in (("addressPrefix", r.get("address_prefix")), ("nextHopType", r.get("next_hop_type")),
                                                    ("nextHopIpAddress", r.get("next_hop_ip"))) if v is not None}}
                  for i, r in enumerate(table.get("routes", []))]
        put("routeTables", group_of(table, where), _need(table, "name", where),
            {"properties": {"disableBgpRoutePropagation": bool(table.get("disable_bgp_route_propagation", False)), "routes": routes}}, where)
    for index, vnet in enumerate(topo.get("virtual_networks", [])):
        where = f"virtual_networks[{index}]"
        group = group_of(vnet, where)
        subnets = []
        for sub_index, subnet in enumerate(vnet.get("subnets", [])):
            props = {"addressPrefix": _need(subnet, "address_prefix", f"{where}.subnets[{sub_index}]")}
            if subnet.get("route_table"):
                props["routeTable"] = {"id": rid(group, f"routeTables/{subnet['route_table']}")}
            subnets.append({"name": _need(subnet, "name", f"{where}.subnets[{sub_index}]"), "properties": props})
        put("virtualNetworks", group, _need(vnet, "name", where),
            {"properties": {"addressSpace": {"addressPrefixes": _need(vnet, "address_prefixes", where)}, "subnets": subnets}}, where)
    for index, nic in enumerate(topo.get("network_interfaces", [])):
        where = f"network_interfaces[{index}]"
        group = group_of(nic, where)
        config = {"subnet": {"id": rid(group, f"virtualNetworks/{_need(nic, 'vnet', where)}/subnets/{_need(nic, 'subnet', where)}")}}
        if nic.get("private_ip"):
            config.update(privateIPAddress=nic["private_ip"], privateIPAllocationMethod="Static")
        put("networkInterfaces", group, _need(nic, "name", where),
            {"properties": {"enableIPForwarding": bool(nic.get("enable_ip_forwarding", False)),
                            "ipConfigurations": [{"name": "ipconfig1", "properties": config}]}}, where)
    for index, server in enumerate(topo.get("route_servers", [])):
        _route_server(service, server, f"route_servers[{index}]", group_of(server, f"route_servers[{index}]"), put, rid)
    for key, value in (topo.get("routes") or {}).items():
        hub, conn = (key.split("/", 1) + [""])[:2]
        service.set_routes(hub, conn, value)
    for index, item in enumerate(topo.get("resources", [])):
        ref = id_ref(_need(item, "id", f"resources[{index}]"))
        if ref is None:
            raise bad_request("InvalidSeed", f"resources[{index}].id is not a Microsoft.Network resource id the emulator models.")
        service.apply_put(ref, _need(item, "body", f"resources[{index}]"), immediate=True)
        created.append(ref.id)
    return created


def _route_server(service, server, where, group, put, rid):  # pylint: disable=too-many-arguments
    """A Route Server as Azure builds it: hub, ipConfiguration on RouteServerSubnet with a Standard public IP, peers."""
    name = _need(server, "name", where)
    pip_name = server.get("public_ip", f"{name}-pip")
    if service.store.get(rid(group, f"publicIPAddresses/{pip_name}")) is None:
        put("publicIPAddresses", group, pip_name, {"sku": {"name": "Standard"}, "properties": {"publicIPAllocationMethod": "Static"}}, where)
    hub_id = put("virtualHubs", group, name, {"properties": {
        "sku": "Standard", "allowBranchToBranchTraffic": bool(server.get("allow_branch_to_branch", False)),
        "hubRoutingPreference": server.get("hub_routing_preference", "ExpressRoute")}}, where)
    subnet_id = rid(group, f"virtualNetworks/{_need(server, 'vnet', where)}/subnets/{server.get('subnet', 'RouteServerSubnet')}")
    put(f"virtualHubs/{name}/ipConfigurations", group, "ipconfig1", {"properties": {
        "subnet": {"id": subnet_id}, "publicIPAddress": {"id": rid(group, f"publicIPAddresses/{pip_name}")}}}, where)
    hub = service.store.get(hub_id)
    if server.get("routing_ready", True):
        hub["_emu"]["routing_ready_at"] = service.clock()
    for index, peer in enumerate(server.get("peers", [])):
        put(f"virtualHubs/{name}/bgpConnections", group, _need(peer, "name", f"{where}.peers[{index}]"),
            {"properties": {"peerIp": peer.get("peer_ip"), "peerAsn": peer.get("peer_asn")}}, f"{where}.peers[{index}]")
