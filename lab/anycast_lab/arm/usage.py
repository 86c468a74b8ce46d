"""Who uses what: the IP configurations in a subnet, the subnets on a route table or NSG, a hub's routing state.

Computed from the stored resources whenever asked, never stored, so they cannot drift from the resources.
"""
import ipaddress

from .addressing import arm_type


def addresses_of(address):
    """The addresses an IP configuration holds: one ("10.0.0.4") or a prefix ("10.0.0.16/28")."""
    return set(ipaddress.IPv4Network(address))


def all_ip_configurations(store):
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


def subnet_ip_configurations(store, subnet_id):
    return [ip for ip in all_ip_configurations(store) if ip["subnet"].lower() == (subnet_id or "").lower()]


def subnets_using(store, resource_id, key="routeTable"):
    """The subnets whose `key` (routeTable, networkSecurityGroup) references resource_id."""
    return [body["id"] for body in store.find(lambda b: b["type"] == arm_type("virtualNetworks/subnets")
                                              and b["properties"].get(key, {}).get("id", "").lower() == resource_id.lower())]


def routing_state(svc, hub):
    """Provisioning for a while after the hub or its ipConfiguration is provisioned; then Provisioned
    when the hub has an ipConfiguration (its router instances), else None."""
    if hub["properties"].get("provisioningState") == "Failed":
        return "Failed"
    ready_at = hub.get("_emu", {}).get("routing_ready_at")
    if ready_at is not None and svc.clock() < ready_at:
        return "Provisioning"
    return "Provisioned" if svc.store.children(hub["id"], "ipConfigurations") else "None"
