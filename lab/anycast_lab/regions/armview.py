"""Read the ARM emulator's state file: the Azure resources the lab's fabric mirrors.

The emulator keeps every resource (child resources such as subnets, routes and bgpConnections
included) as its stored body in state["resources"], keyed by lower-case ARM id. The fabric only
reads; ARM stays the one writer.
"""
import json

from . import plan


def _props(body):
    return (body or {}).get("properties") or {}


class ArmView:
    """Typed look-ups over one snapshot of the emulator's resources (the lab's subscription)."""

    def __init__(self, resources, subscription_id=plan.SUBSCRIPTION_ID):
        self.resources = {key.lower(): body for key, body in resources.items()}
        self.subscription_id = subscription_id

    @classmethod
    def load(cls, path):
        with open(path, encoding="utf-8") as handle:
            return cls(json.load(handle).get("resources", {}))

    def get(self, resource_group, type_path):
        """A Microsoft.Network resource of the lab's subscription by group and path ('virtualHubs/rs-we'), or None."""
        return self.resources.get(f"/subscriptions/{self.subscription_id}/resourcegroups/{resource_group}/"
                                  f"providers/microsoft.network/{type_path}".lower())

    def children(self, parent, child_type):
        prefix = f"{parent['id']}/{child_type}/".lower()
        return [body for key, body in self.resources.items() if key.startswith(prefix) and "/" not in key[len(prefix):]]

    def hub(self, resource_group, name):
        """The Route Server (virtualHubs) body, or None when it does not exist (yet)."""
        return self.get(resource_group, f"virtualHubs/{name}")

    def bgp_peers(self, hub):
        """(connection name, peer ip, peer asn) of every provisioned bgpConnection of a hub, sorted by peer ip."""
        if hub is None:
            return []
        # A connection Azure is still creating or deleting does not peer yet / any more.
        peers = [(body["name"], _props(body)["peerIp"], int(_props(body)["peerAsn"])) for body in self.children(hub, "bgpConnections")
                 if _props(body).get("provisioningState", "Succeeded") == "Succeeded"]
        return sorted(peers, key=lambda peer: tuple(int(part) for part in peer[1].split(".")))

    def nic_forwarding(self, resource_group, name):
        """enableIPForwarding of a NIC (False when the NIC does not exist: nothing forwards for it)."""
        return bool(_props(self.get(resource_group, f"networkInterfaces/{name}")).get("enableIPForwarding", False))

    def subnet_routes(self, resource_group, vnet, subnet):
        """UDRs of the route table associated with a subnet: [(prefix, nextHopType, nextHopIpAddress)]; None if none associated."""
        table_ref = _props(self.get(resource_group, f"virtualNetworks/{vnet}/subnets/{subnet}")).get("routeTable")
        table = self.resources.get((table_ref or {}).get("id", "").lower())
        if table is None:
            return None
        return [(_props(route)["addressPrefix"], _props(route)["nextHopType"], _props(route).get("nextHopIpAddress"))
                for route in self.children(table, "routes")]
