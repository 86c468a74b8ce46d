"""Learned and advertised routes of a Route Server peer (POST .../learnedRoutes, .../advertisedRoutes as long-running
operations) and the admin hooks that set them and a hub's routing lag. A part of Service (service.py)."""
import copy
import json

from .addressing import PROVIDER, id_ref
from .errors import bad_request, not_found
from .hooks import run_cmd
from .usage import routing_state

ROUTE_ROLES = ("RouteServiceRole_IN_0", "RouteServiceRole_IN_1")


class RouteListing:
    """Mixed into Service: uses its store, settings and clock; Service._list_routes() starts the operations."""

    def _compute_routes(self, op):
        """The body of a finished learned/advertisedRoutes operation: (body, None) or (None, error)."""
        ref = id_ref(op["resource_id"])
        with self.store.lock:
            conn = self.store.get(ref.id)
            hub = self.store.get(ref.parent_id)
            if conn is None or hub is None:
                return None, {"code": "ResourceNotFound", "message": f"Bgp connection {ref.id} was deleted while its routes were listed."}
            peer_ip = conn["properties"]["peerIp"]
            stored = self.store.data["routes"].get(f"{ref.names[0]}/{ref.names[1]}".lower(), {}).get(op["action"])
            default = self._default_routes(hub, op["action"])
        if self.settings.routes_cmd:
            out = run_cmd(self.settings.routes_cmd, [ref.names[0], ref.names[1], peer_ip, op["action"]])
            if out is None:
                return None, {"code": "InternalServerError", "message": "The route source command failed; see the emulator's stderr."}
            try:
                return json.loads(out), None
            except ValueError:
                return None, {"code": "InternalServerError", "message": f"The route source command printed no JSON: {out[:200]!r}"}
        return (stored if stored is not None else default), None

    def _default_routes(self, hub, action):
        """Without the lab: nothing learned; the hub VNet's address space advertised by each instance."""
        ips = hub["properties"].get("virtualRouterIps") or []
        body = {role: [] for role in ROUTE_ROLES}
        if action == "learned" or len(ips) < 2:
            return body
        configs = self.store.children(hub["id"], "ipConfigurations")
        vnet = self.store.get(configs[0]["properties"]["subnet"]["id"].rsplit("/subnets/", 1)[0]) if configs else None
        for role, local in zip(ROUTE_ROLES, ips):
            for prefix in (vnet or {}).get("properties", {}).get("addressSpace", {}).get("addressPrefixes", []):
                body[role].append({"localAddress": local, "network": prefix, "nextHop": local, "sourcePeer": local,
                                   "origin": "Igp", "asPath": "65515", "weight": 0})
        return body

    def set_routing_lag(self, sub_id, group, hub_name, seconds):
        """Make a hub's routingState Provisioning for `seconds` from now (0: Provisioned now), for tests
        that must meet the lag whatever their start-up time."""
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
            raise bad_request("InvalidRequestFormat", "Property 'seconds' must be a number >= 0.")
        with self.store.lock:
            hub = self.store.get(f"/subscriptions/{sub_id}/resourceGroups/{group}/providers/{PROVIDER}/virtualHubs/{hub_name}")
            if hub is None:
                raise not_found("ResourceNotFound", f"Virtual hub '{hub_name}' in resource group '{group}' was not found.")
            hub.setdefault("_emu", {})["routing_ready_at"] = self.clock() + seconds
            self.store.save()
            return {"routingState": routing_state(self, hub)}

    def set_routes(self, hub_name, conn_name, body):
        if not isinstance(body, dict) or not set(body) <= {"learned", "advertised"}:
            raise bad_request("InvalidRequestFormat", "Body must be {'learned': {...}, 'advertised': {...}} keyed RouteServiceRole_IN_0/_IN_1.")
        for action, value in body.items():
            if not isinstance(value, dict) or not set(value) <= set(ROUTE_ROLES):
                raise bad_request("InvalidRequestFormat", f"'{action}' must be an object keyed {ROUTE_ROLES[0]} / {ROUTE_ROLES[1]}.")
        with self.store.lock:
            entry = self.store.data["routes"].setdefault(f"{hub_name}/{conn_name}".lower(), {})
            entry.update(copy.deepcopy(body))
            self.store.save()
        return entry
