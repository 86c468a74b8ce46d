"""Long-running operations, as azure-mgmt-network's ARMPolling expects them.

A write is applied at once with provisioningState Updating (or Deleting) and an operation record; a timer
completes it after `op_seconds`, sets Succeeded (or Failed), runs the type's side effects (router IPs,
routing state, peer state) and queues the --on-change-cmd hook. Operations live in the state, so they
survive a restart. The status and Location URLs answer the polls.
"""
import ipaddress
import threading
import traceback
import uuid

from .addressing import id_ref
from .bodies import new_etag
from .errors import not_found
from .response import Response


class Operations:
    """Mixed into Service: uses its store, settings, clock, base URL, notify() and _compute_routes() (route_listing.py)."""

    def _start(self, resource_id, scope, method, changed, location, fault, extra=None, kind="write"):  # pylint: disable=too-many-arguments
        op_id = str(uuid.uuid4())
        op = {"id": op_id, "status": "InProgress", "resource_id": resource_id, "scope": scope.lower(), "method": method, "kind": kind,
              "changed": changed, "location": location.replace(" ", "").lower(), "started": self.clock(),
              "done_at": self.clock() + self.settings.op_seconds, "fault": fault, "result": None, "error": None}
        if extra:
            op.update(extra)
        self._prune_operations()
        self.store.data["operations"][op_id] = op
        self.store.save()
        self._schedule(op)
        return op

    def _prune_operations(self, keep=200):
        """Forget the oldest finished operations so the state file stays small (Azure forgets them too)."""
        ops = self.store.data["operations"]
        finished = sorted((op for op in ops.values() if op["status"] != "InProgress"), key=lambda op: op["started"])
        for op in finished[:max(0, len(finished) - keep)]:
            del ops[op["id"]]

    def _schedule(self, op):
        timer = threading.Timer(max(0.0, op["done_at"] - self.clock()), self._complete, args=(op["id"],))
        timer.daemon = True
        self._timers[op["id"]] = timer
        timer.start()

    def _resume_operations(self):
        """After a restart, operations that were running finish (late ones at once)."""
        for op in self.store.data["operations"].values():
            if op["status"] == "InProgress":
                self._schedule(op)

    def _complete(self, op_id):
        # Routes may come from a slow command: compute them before taking the lock.
        op = self.store.data["operations"].get(op_id)
        if op is None:
            return
        result, error = None, None
        if op["kind"] == "routes" and not op.get("fault"):
            result, error = self._compute_routes(op)
        with self.store.lock:
            self._timers.pop(op_id, None)
            if self.store.data["operations"].get(op_id) is not op:
                return  # the state was reset meanwhile
            failed = op.get("fault") is not None
            if failed:
                fault = op["fault"]
                op["error"] = {"code": fault.get("code") or "InternalServerError",
                               "message": fault.get("message") or "The operation failed (fault injected by the emulator)."}
            elif error is not None:
                op["error"] = error
                failed = True
            op["status"] = "Failed" if failed else "Succeeded"
            op["result"] = result
            if op["kind"] == "write":
                try:
                    self._finish_write(op, failed)
                except Exception as exc:  # pylint: disable=broad-exception-caught
                    # A bug here must not leave the operation running for ever (and its resource locked).
                    traceback.print_exc()
                    op["status"], op["error"], failed = "Failed", {"code": "InternalServerError", "message": f"{type(exc).__name__}: {exc}"}, True
            self.store.save()
        if op["kind"] == "write" and not failed:
            self.notify(op["method"], op["resource_id"])

    def _finish_write(self, op, failed):
        if op["method"] == "DELETE" and not failed:
            if op.get("group"):
                sub = self.store.subscription(op["group"][0])
                sub["resource_groups"].pop(op["group"][1], None)
            for resource_id in op["changed"]:
                prefix = resource_id.lower()
                for key in [k for k in self.store.data["resources"] if k == prefix or k.startswith(prefix + "/")]:
                    del self.store.data["resources"][key]
            self._complete_effects(id_ref(op["resource_id"]), "DELETE")
            return
        for resource_id in op["changed"]:
            body = self.store.get(resource_id)
            if body is not None:
                body["properties"]["provisioningState"] = "Failed" if failed else "Succeeded"
        if not failed and op["method"] == "PUT":
            self._complete_effects(id_ref(op["resource_id"]), "PUT")

    def _complete_effects(self, ref, method):
        """What the real service does once a write lands."""
        if ref is None:
            return
        if ref.type_key == "virtualHubs" and method == "PUT":
            hub = self.store.get(ref.id)
            hub.setdefault("_emu", {})
            if "routing_ready_at" not in hub["_emu"]:
                hub["_emu"]["routing_ready_at"] = self.clock() + self.settings.routing_delay
        elif ref.type_key == "virtualHubs/ipConfigurations":
            hub = self.store.get(ref.parent_id)
            if hub is None:
                return
            if method == "PUT":
                prefix = self.store.get(self.store.get(ref.id)["properties"]["subnet"]["id"])["properties"]["addressPrefix"]
                base = ipaddress.IPv4Network(prefix).network_address
                # Route Server's two instances take .4 and .5 of RouteServerSubnet.
                hub["properties"]["virtualRouterIps"] = [str(base + 4), str(base + 5)]
                hub.setdefault("_emu", {})["routing_ready_at"] = self.clock() + self.settings.routing_delay
            else:
                hub["properties"]["virtualRouterIps"] = []
            hub["etag"] = new_etag()
        elif ref.type_key == "virtualHubs/bgpConnections" and method == "PUT":
            conn = self.store.get(ref.id)
            # Without the lab a provisioned peer counts as Connected; with it, GETs ask --peer-state-cmd.
            conn["properties"]["connectionState"] = "Connecting" if self.settings.peer_state_cmd else "Connected"

    def _operation_status(self, op_id, is_location, api_version):
        op = self.store.data["operations"].get(op_id)
        if op is None:
            raise not_found("OperationNotFound", f"Operation {op_id} was not found.")
        if op["status"] == "InProgress":
            if is_location:
                return Response(202, None, self._lro_headers(op, api_version, location=True, azure_async=False))
            return Response(200, {"status": "InProgress"}, self._poll_hint(op))
        if not is_location:
            body = {"status": op["status"]}
            if op["error"]:
                body["error"] = op["error"]
            return Response(200, body)
        if op["status"] == "Failed":
            # The Location of a failed operation answers with its error; 500 (retried by clients) only for internal errors.
            return Response(500 if op["error"]["code"] == "InternalServerError" else 400, {"error": op["error"]})
        if op["kind"] == "routes":
            return Response(200, op["result"])
        return Response(204)

    def _poll_hint(self, op):
        if self.settings.retry_after is not None:
            return {"Retry-After": str(int(self.settings.retry_after))}
        # The SDK honours x-ms-retry-after-ms; without a hint it would sleep its 30 s default between polls.
        remaining = max(0.0, op["done_at"] - self.clock())
        return {"x-ms-retry-after-ms": str(int(remaining * 1000) + 50)}

    def _lro_headers(self, op, api_version, location=False, azure_async=True):
        root = f"{self.base}/subscriptions/{self._op_sub(op)}/providers/Microsoft.Network/locations/{op['location']}"
        headers = self._poll_hint(op)
        if azure_async:
            headers["Azure-AsyncOperation"] = f"{root}/operations/{op['id']}?api-version={api_version}"
        if location:
            headers["Location"] = f"{root}/operationResults/{op['id']}?api-version={api_version}"
        return headers

    @staticmethod
    def _op_sub(op):
        return op["resource_id"].split("/")[2]

    def cancel_timers(self):
        for timer in list(self._timers.values()):
            timer.cancel()
