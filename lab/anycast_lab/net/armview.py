"""Read the ARM emulator's state file: the Azure resources the lab's fabric mirrors.

The emulator keeps every resource as the body GET returns (plus internal fields under "_emu")
in state["resources"], keyed by lower-case id. The fabric only reads; ARM stays the one writer.
"""
import json


def _type(body):
    return (body.get("type") or "").lower()


def _props(body):
    return body.get("properties") or {}


class ArmView:
    """Typed look-ups over one snapshot of the emulator's resources."""

    def __init__(self, resources):
        self.resources = [body for body in resources if isinstance(body, dict) and body.get("id")]

    @classmethod
    def load(cls, path):
        with open(path, encoding="utf-8") as handle:
            state = json.load(handle)
        return cls(state.get("resources", {}).values())

    def of_type(self, arm_type):
        return [body for body in self.resources if _type(body) == arm_type.lower()]

    def by_id(self, resource_id):
        key = (resource_id or "").lower()
        return next((body for body in self.resources if body["id"].lower() == key), None)

    def hub(self, resource_group, name):
        """The Route Server (virtualHubs) body, or None when it does not exist (yet)."""
        suffix = f"/resourcegroups/{resource_group}/providers/microsoft.network/virtualhubs/{name}".lower()
        return next((body for body in self.of_type("Microsoft.Network/virtualHubs") if body["id"].lower().endswith(suffix)), None)

    def bgp_peers(self, hub):
        """(connection name, peer ip, peer asn) of every provisioned bgpConnection of a hub, sorted by peer ip."""
        if hub is None:
            return []
        prefix = hub["id"].lower() + "/bgpconnections/"
        peers = []
        for body in self.resources:
            if not body["id"].lower().startswith(prefix):
                continue
            props = _props(body)
            # A connection Azure is still creating or deleting does not peer yet / any more.
            if props.get("provisioningState", "Succeeded") != "Succeeded":
                continue
            peers.append((body["name"], props["peerIp"], int(props["peerAsn"])))
        return sorted(peers, key=lambda peer: tuple(int(part) for part in peer[1].split(".")))

    def nic_forwarding(self, resource_group, name):
        """enableIPForwarding of a NIC; None when the NIC does not exist."""
        suffix = f"/resourcegroups/{resource_group}/providers/microsoft.network/networkinterfaces/{name}".lower()
        nic = next((body for body in self.of_type("Microsoft.Network/networkInterfaces") if body["id"].lower().endswith(suffix)), None)
        return None if nic is None else bool(_props(nic).get("enableIPForwarding", False))

    def subnet_routes(self, resource_group, vnet, subnet):
        """UDRs of the route table associated with a subnet: [(prefix, nextHopType, nextHopIpAddress)]; None if none associated."""
        subnet_id = f"/resourcegroups/{resource_group}/providers/microsoft.network/virtualnetworks/{vnet}/subnets/{subnet}".lower()
        body = next((item for item in self.resources if item["id"].lower().endswith(subnet_id)), None)
        if body is None:
            # Subnets may also live only inline in their VNet's body.
            vnet_body = next((item for item in self.of_type("Microsoft.Network/virtualNetworks")
                              if item["id"].lower().endswith(subnet_id.rsplit("/subnets/", 1)[0])), None)
            inline = _props(vnet_body).get("subnets", []) if vnet_body else []
            body = next((item for item in inline if item.get("name", "").lower() == subnet.lower()), None)
        table_ref = _props(body).get("routeTable") if body else None
        if not table_ref:
            return None
        table = self.by_id(table_ref.get("id"))
        if table is None:
            return None
        routes = list(_props(table).get("routes", []))
        # Routes written one by one (routeTables/x/routes/y) are children of the table too.
        prefix = table["id"].lower() + "/routes/"
        inline_names = {route.get("name", "").lower() for route in routes}
        routes += [body for body in self.resources if body["id"].lower().startswith(prefix) and body["name"].lower() not in inline_names]
        return [(_props(route)["addressPrefix"], _props(route)["nextHopType"], _props(route).get("nextHopIpAddress")) for route in routes]
