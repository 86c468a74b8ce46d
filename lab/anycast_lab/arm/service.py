"""ARM request handling: addressing, existence checks, writes as long-running operations.

A write is applied at once with provisioningState Updating (or Deleting) and an
operation record; a timer completes it after `op_seconds`, sets Succeeded (or
Failed), runs the type's side effects (router IPs, routing state, peer state) and
the --on-change-cmd hook. While an operation runs on a resource, other writes to
it (for a hub: to the hub or any of its children) get 409 AnotherOperationInProgress.
"""
import concurrent.futures
import json
import os
import queue
import re
import shlex
import subprocess
import threading
import time
import traceback
import uuid

from . import catalog
from . import resources as res
from .errors import ArmError, bad_request, not_found
from .identity import check_bearer
from .route_listing import RouteListing

API_VERSION_RE = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")
PEER_STATES = ("Unknown", "Connecting", "Connected", "NotConnected")  # HubBgpConnectionStatus
PEER_STATE_TTL = 1.0  # seconds a --peer-state-cmd answer is reused


class Response:  # pylint: disable=too-few-public-methods
    def __init__(self, status, body=None, headers=None):
        self.status, self.body, self.headers = status, body, headers or {}


class Settings:  # pylint: disable=too-few-public-methods
    """Timings and hooks; changeable at run time through PUT /_emulator/settings."""

    def __init__(self, op_seconds=0.2, routing_delay=0.5, retry_after=None, on_change_cmd=None, routes_cmd=None, peer_state_cmd=None):
        self.op_seconds = op_seconds          # how long every write operation runs
        self.routing_delay = routing_delay    # how long a hub's routingState stays Provisioning
        self.retry_after = retry_after        # None: hint polls with x-ms-retry-after-ms; N: Azure-like Retry-After N
        self.on_change_cmd = on_change_cmd
        self.routes_cmd = routes_cmd
        self.peer_state_cmd = peer_state_cmd
        self._initial = self.as_dict()

    def as_dict(self):
        return {key: value for key, value in vars(self).items() if not key.startswith("_")}

    def restore(self):
        """Back to the values given at start (POST /_emulator/reset)."""
        self.update(self._initial)

    def update(self, values):
        for key, value in values.items():
            if key.startswith("_") or key not in vars(self):
                raise bad_request("InvalidSetting", f"Unknown setting '{key}'. Known: {', '.join(sorted(self.as_dict()))}.")
            if key in ("op_seconds", "routing_delay") and (not isinstance(value, (int, float)) or value < 0):
                raise bad_request("InvalidSetting", f"Setting '{key}' must be a number >= 0.")
            setattr(self, key, value)


class Service(RouteListing):  # pylint: disable=too-many-public-methods
    """Everything ARM: called by the HTTP layer with an already-parsed request."""

    def __init__(self, store, settings, base_url=""):
        self.store = store
        self.settings = settings
        self.base = base_url
        self.clock = time.time
        self._timers = {}
        self._hooks = queue.Queue()
        self._peer_states = {}
        threading.Thread(target=self._run_hooks, name="arm-hooks", daemon=True).start()
        self._resume_operations()

    # ------------------------------------------------------------ entry point
    def handle(self, method, path, query, headers, raw_body, fault=None):  # pylint: disable=too-many-arguments
        """One ARM request -> Response. `fault` is an injected lro_final fault for this request, if any."""
        api_version = (query.get("api-version") or [None])[0]
        segments = [seg for seg in path.split("/") if seg]
        if not segments or segments[0].lower() != "subscriptions" or len(segments) < 2:
            raise ArmError(404, "InvalidResourceType", f"The path '{path}' is not an ARM resource path the emulator knows.")
        sub_id = segments[1]
        with self.store.lock:
            sub = self.store.subscription(sub_id)
            check_bearer(self.base, self.store.data, headers.get("authorization"), sub["tenant_id"] if sub else None)
            if not api_version:
                raise bad_request("MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests.")
            if not API_VERSION_RE.match(api_version):
                raise bad_request("InvalidApiVersionParameter", f"The api-version '{api_version}' is invalid. The supported versions look like 'YYYY-MM-DD'.")
            if sub is None:
                raise not_found("SubscriptionNotFound", f"The subscription '{sub_id}' could not be found.")
            body = self._parse_body(method, raw_body)
            response = self._route(method, sub, segments[2:], body, headers, api_version, fault)
        if method == "GET" and response.status == 200:
            self._fill_peer_states(response.body)
        return response

    @staticmethod
    def _parse_body(method, raw_body):
        if method not in ("PUT", "PATCH") or not raw_body:
            return None
        try:
            return json.loads(raw_body)
        except ValueError as exc:
            raise bad_request("InvalidRequestContent", f"The request content was invalid and could not be deserialized: {exc}.") from exc

    def _route(self, method, sub, rest, body, headers, api_version, fault):  # pylint: disable=too-many-arguments,too-many-return-statements
        lower = [seg.lower() for seg in rest]
        if not rest:
            return Response(200, {"id": f"/subscriptions/{sub['id']}", "subscriptionId": sub["id"], "tenantId": sub["tenant_id"],
                                  "displayName": sub.get("display_name", "anycast lab"), "state": "Enabled"})
        if lower == ["locations"] and method == "GET":
            return Response(200, catalog.locations_body(sub["id"]))
        if lower[0] == "resourcegroups":
            if len(rest) == 1:
                return self._list(method, [self._render_group(sub, g) for g in sub["resource_groups"].values()])
            if len(rest) == 2:
                return self._resource_group(method, sub, rest[1], body, api_version, fault)
            if len(rest) >= 5 and lower[2] == "providers" and lower[3] == "microsoft.network":
                group = self._group_or_404(sub, rest[1])
                parsed = res.parse_provider_path(sub["id"], group["name"], rest[4:])
                if parsed is None:
                    raise self._unknown_type(rest[4:], api_version)
                catalog.check_api_version(api_version, parsed[0].type_key, group["location"])
                return self._resource(method, parsed[0], parsed[1], body, headers, api_version, fault)
        if len(rest) >= 3 and lower[0] == "providers" and lower[1] == "microsoft.network":
            if len(rest) == 6 and lower[2] == "locations" and lower[4] in ("operations", "operationresults"):
                return self._operation_status(rest[5], lower[4] == "operationresults", api_version)
            if len(rest) == 3 and method == "GET":
                key = res.parse_provider_path(sub["id"], "x", rest[2:3])
                if key is None:
                    raise self._unknown_type(rest[2:], api_version)
                wanted = res.arm_type(key[0].type_key)
                prefix = f"/subscriptions/{sub['id']}/".lower()
                return self._list("GET", [res.render(self, b) for k, b in self.store.data["resources"].items()
                                          if b["type"] == wanted and k.startswith(prefix)])
        raise ArmError(404, "InvalidResourceType", f"The resource path '/{'/'.join(rest)}' is not known to the emulator.")

    @staticmethod
    def _unknown_type(segments, api_version):
        return ArmError(404, "InvalidResourceType", f"The resource type '{'/'.join(segments[::2])}' could not be found in the namespace "
                                                    f"'Microsoft.Network' for api version '{api_version}'.")

    @staticmethod
    def _list(method, items):
        if method != "GET":
            raise ArmError(405, "MethodNotAllowed", f"{method} is not allowed on a collection.")
        return Response(200, {"value": items})

    # ------------------------------------------------------------ resource groups
    def _group_or_404(self, sub, name):
        group = sub["resource_groups"].get(name.lower())
        if group is None:
            raise not_found("ResourceGroupNotFound", f"Resource group '{name}' could not be found.")
        return group

    @staticmethod
    def _render_group(sub, group):
        body = {"id": f"/subscriptions/{sub['id']}/resourceGroups/{group['name']}", "name": group["name"],
                "type": "Microsoft.Resources/resourceGroups", "location": group["location"], "properties": {"provisioningState": "Succeeded"}}
        if group.get("tags"):
            body["tags"] = group["tags"]
        return body

    def _resource_group(self, method, sub, name, body, api_version, fault):  # pylint: disable=too-many-arguments
        group = sub["resource_groups"].get(name.lower())
        if method in ("GET", "HEAD"):
            if group is None:
                if method == "HEAD":
                    return Response(404)
                self._group_or_404(sub, name)
            return Response(200 if method == "GET" else 204, self._render_group(sub, group) if method == "GET" else None)
        if method == "PUT":
            if not isinstance(body, dict) or not body.get("location"):
                raise ArmError(400, "LocationRequired", "The location property is required for this definition.")
            created = group is None
            sub["resource_groups"][name.lower()] = {"name": group["name"] if group else name, "location": body["location"],
                                                    "tags": body.get("tags") or {}}
            self.store.save()
            return Response(201 if created else 200, self._render_group(sub, sub["resource_groups"][name.lower()]))
        if method == "DELETE":
            if group is None:
                raise not_found("ResourceGroupNotFound", f"Resource group '{name}' could not be found.")
            group_id = f"/subscriptions/{sub['id']}/resourceGroups/{group['name']}"
            doomed = [b["id"] for k, b in self.store.data["resources"].items() if k.startswith(group_id.lower() + "/")]
            op = self._start(group_id, group_id, "DELETE", doomed, group["location"], fault, extra={"group": [sub["id"], name.lower()]})
            return Response(202, None, self._lro_headers(op, api_version, location=True, azure_async=False))
        raise ArmError(405, "MethodNotAllowed", f"{method} is not allowed on a resource group.")

    # ------------------------------------------------------------ resources
    def _resource(self, method, ref, action, body, headers, api_version, fault):  # pylint: disable=too-many-arguments,too-many-return-statements
        if ref.parent_id and self.store.get(ref.parent_id) is None:
            raise not_found("ParentResourceNotFound", f"Failed to perform '{method.lower()}' on resource(s) of type '{ref.type_key.split('/')[1]}', "
                                                      f"because the parent resource '{ref.parent_id}' could not be found.")
        if ref.collection:
            parent = ref.parent_id
            if parent:
                items = self.store.children(parent, ref.type_key.split("/")[1])
            else:
                prefix = f"{ref.group_id}/providers/".lower()
                items = [b for k, b in self.store.data["resources"].items() if b["type"] == res.arm_type(ref.type_key) and k.startswith(prefix)]
            return self._list(method, [res.render(self, b) for b in items])
        existing = self.store.get(ref.id)
        if action is not None:
            if method != "POST":
                raise ArmError(405, "MethodNotAllowed", f"{method} is not allowed on {action}Routes.")
            return self._list_routes(ref, action, existing, api_version, fault)
        if method == "GET":
            if existing is None:
                raise self._resource_not_found(ref)
            return Response(200, res.render(self, existing))
        if method == "PUT":
            self._check_preconditions(headers, existing)
            created, op = self.apply_put(ref, body, fault=fault)
            return Response(201 if created else 200, res.render(self, self.store.get(ref.id)), self._lro_headers(op, api_version))
        if method == "PATCH":
            if existing is None:
                raise self._resource_not_found(ref)
            return self._patch_tags(ref, existing, body)
        if method == "DELETE":
            if existing is None:
                return Response(204)
            op = self.apply_delete(ref, fault=fault)
            return Response(202, None, self._lro_headers(op, api_version, location=True))
        raise ArmError(405, "MethodNotAllowed", f"{method} is not allowed on {ref.type_key}.")

    @staticmethod
    def _resource_not_found(ref):
        return not_found("ResourceNotFound", f"The Resource '{res.PROVIDER}/{ref.type_key.split('/')[0]}/{'/'.join(ref.names)}' under resource group "
                                             f"'{ref.rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix")

    @staticmethod
    def _check_preconditions(headers, existing):
        if_match, if_none = headers.get("if-match"), headers.get("if-none-match")
        if if_match and if_match != "*" and (existing is None or existing["etag"] != if_match):
            raise ArmError(412, "PreconditionFailed", f"The condition If-Match {if_match} was not met: the resource changed or does not exist.")
        if if_none == "*" and existing is not None:
            raise ArmError(412, "PreconditionFailed", "The condition If-None-Match * was not met: the resource already exists.")

    def _patch_tags(self, ref, existing, body):
        if not isinstance(body, dict) or not isinstance(body.get("tags", {}), dict) or set(body) - {"tags"}:
            raise bad_request("InvalidRequestFormat", "PATCH accepts only {'tags': {...}} on this emulator.")
        self._check_no_operation(ref)
        existing["tags"] = body.get("tags", {})
        existing["etag"] = res.new_etag()
        self.store.save()
        return Response(200, res.render(self, existing))

    def _check_no_operation(self, ref):
        """Azure serialises writes per resource (for a hub: the hub and all its children)."""
        scope = ref.top_id.lower()
        running = next((op for op in self.store.data["operations"].values()
                        if op["status"] == "InProgress" and op["scope"] == scope and op["kind"] == "write"), None)
        if running is not None:
            raise ArmError(409, "AnotherOperationInProgress",
                           f"Operation on resource {ref.id} cannot be performed because another operation ({running['method']} "
                           f"{running['resource_id']}) on this or a dependent resource is in progress. Retry the request later.")

    # ------------------------------------------------------------ writes (also used by seed)
    def apply_put(self, ref, body, fault=None, immediate=False):
        """Validate and store a PUT; return (created, operation or None when immediate)."""
        with self.store.lock:
            group = self.store.resource_group(ref.sub, ref.rg)
            if group is None:
                raise not_found("ResourceGroupNotFound", f"Resource group '{ref.rg}' could not be found.")
            if ref.parent_id and self.store.get(ref.parent_id) is None:
                raise not_found("ParentResourceNotFound", f"Parent resource '{ref.parent_id}' could not be found.")
            if not immediate:
                self._check_no_operation(ref)
            existing = self.store.get(ref.id)
            props = res.validate(self, ref, body, existing)
            state = "Succeeded" if immediate else "Updating"
            location = None
            if res.TYPES[ref.type_key] is None:
                location = res.location_of(body, existing["location"] if existing else None)
                catalog.check_location(location, ref.type_key)
                if existing and location.replace(" ", "").lower() != existing["location"].replace(" ", "").lower():
                    raise bad_request("InvalidResourceLocation", f"The resource '{ref.names[-1]}' already exists in location "
                                                                 f"'{existing['location']}'; property 'location' cannot change to '{location}'.")
            embedded = {"subnets": props.pop("_subnets", None), "routes": props.pop("_routes", None)}
            removed = self._removed_children(ref, embedded)  # checked before anything changes
            props["provisioningState"] = state
            self.store.put(ref.id, res.new_body(ref, location, props, existing, body.get("tags"), body.get("sku")))
            changed = [ref.id]
            for old in removed:
                self.store.delete(old["id"])
            for children in embedded.values():
                for child_ref, child_props in children or []:
                    child_props["provisioningState"] = state
                    self.store.put(child_ref.id, res.new_body(child_ref, None, child_props, self.store.get(child_ref.id)))
                    changed.append(child_ref.id)
            if ref.parent_id:
                self.store.get(ref.parent_id)["etag"] = res.new_etag()
            if immediate:
                self._complete_effects(ref, "PUT")
                self.store.save()
                return existing is None, None
            op = self._start(ref.id, ref.top_id, "PUT", changed, self._location(ref), fault)
            return existing is None, op

    def _removed_children(self, ref, embedded):
        """An embedded list (VNet.subnets, routeTable.routes) is authoritative: the children it leaves out go,
        unless one is still in use (then the whole PUT is refused)."""
        removed = []
        for child_type, children in embedded.items():
            if children is None:
                continue
            keep = {child[0].id.lower() for child in children}
            for old in self.store.children(ref.id, child_type):
                if old["id"].lower() not in keep:
                    res.check_delete(self, res.id_ref(old["id"]), old)
                    removed.append(old)
        return removed

    def apply_delete(self, ref, fault=None):
        with self.store.lock:
            self._check_no_operation(ref)
            body = self.store.get(ref.id)
            res.check_delete(self, ref, body)
            body["properties"]["provisioningState"] = "Deleting"
            return self._start(ref.id, ref.top_id, "DELETE", [ref.id], self._location(ref), fault)

    def _location(self, ref):
        top = self.store.get(ref.top_id)
        return (top or {}).get("location", "westeurope")

    # ------------------------------------------------------------ operations
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
            self._hooks.put((op["method"], op["resource_id"]))

    def _finish_write(self, op, failed):
        if op["method"] == "DELETE" and not failed:
            if op.get("group"):
                sub = self.store.subscription(op["group"][0])
                sub["resource_groups"].pop(op["group"][1], None)
            for resource_id in op["changed"]:
                prefix = resource_id.lower()
                for key in [k for k in self.store.data["resources"] if k == prefix or k.startswith(prefix + "/")]:
                    del self.store.data["resources"][key]
            self._complete_effects(res.id_ref(op["resource_id"]), "DELETE")
            return
        for resource_id in op["changed"]:
            body = self.store.get(resource_id)
            if body is not None:
                body["properties"]["provisioningState"] = "Failed" if failed else "Succeeded"
        if not failed and op["method"] == "PUT":
            self._complete_effects(res.id_ref(op["resource_id"]), "PUT")

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
                base = res.ipaddress.IPv4Network(prefix).network_address
                # Route Server's two instances take .4 and .5 of RouteServerSubnet.
                hub["properties"]["virtualRouterIps"] = [str(base + 4), str(base + 5)]
                hub.setdefault("_emu", {})["routing_ready_at"] = self.clock() + self.settings.routing_delay
            else:
                hub["properties"]["virtualRouterIps"] = []
            hub["etag"] = res.new_etag()
        elif ref.type_key == "virtualHubs/bgpConnections" and method == "PUT":
            conn = self.store.get(ref.id)
            # Without the lab a provisioned peer counts as Connected; with it, GETs ask --peer-state-cmd.
            conn["properties"]["connectionState"] = "Connecting" if self.settings.peer_state_cmd else "Connected"

    def _fill_peer_states(self, body):
        """With --peer-state-cmd, a provisioned peer's connectionState in a GET answer is the lab's BGP state,
        asked now, outside the state lock (the command may be slow), at most once per PEER_STATE_TTL per peer."""
        if not self.settings.peer_state_cmd or not isinstance(body, dict):
            return
        items = body["value"] if isinstance(body.get("value"), list) else [body]
        peers = [item for item in items if isinstance(item, dict) and item.get("type") == res.arm_type("virtualHubs/bgpConnections")
                 and item["properties"].get("provisioningState") == "Succeeded"]
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            for peer, state in zip(peers, pool.map(self._peer_state, peers)):
                peer["properties"]["connectionState"] = state

    def _peer_state(self, peer):
        key = peer["id"].lower()
        cached = self._peer_states.get(key)
        if cached and self.clock() - cached[1] < PEER_STATE_TTL:
            return cached[0]
        names = res.id_ref(peer["id"]).names
        state = (self._run_cmd(self.settings.peer_state_cmd, [names[0], names[1], peer["properties"]["peerIp"]]) or "").strip()
        if state not in PEER_STATES:
            print(f"arm emulator: --peer-state-cmd printed {state!r} for {peer['id']}, not one of {PEER_STATES}", flush=True)
            state = "Unknown"
        self._peer_states[key] = (state, self.clock())
        return state

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

    # ------------------------------------------------------------ learned / advertised routes (computed in route_listing.py)
    def _list_routes(self, ref, action, conn, api_version, fault):  # pylint: disable=too-many-arguments
        if conn is None:
            raise self._resource_not_found(ref)
        op = self._start(ref.id, ref.id + "#routes", "POST", [], self._location(ref), fault, extra={"action": action}, kind="routes")
        return Response(202, None, self._lro_headers(op, api_version, location=True, azure_async=False))

    # ------------------------------------------------------------ hooks
    @staticmethod
    def _run_cmd(cmd, args):
        try:
            done = subprocess.run(cmd + " " + " ".join(shlex.quote(str(a)) for a in args), shell=True, capture_output=True, text=True, timeout=60, check=False)
        except subprocess.TimeoutExpired:
            return None
        if done.returncode != 0:
            print(f"arm emulator: command {cmd!r} failed ({done.returncode}): {done.stderr.strip()}", flush=True)
            return None
        return done.stdout

    def notify(self, method, resource_id):
        self._hooks.put((method, resource_id))

    def _run_hooks(self):
        """One worker, so the lab sees changes in order and never two reconfigurations at once."""
        while True:
            method, resource_id = self._hooks.get()
            cmd = self.settings.on_change_cmd
            try:
                if cmd:
                    env = dict(os.environ, ARM_STATE=self.store.path or "", ARM_CHANGED=resource_id, ARM_METHOD=method)
                    done = subprocess.run(cmd, shell=True, env=env, capture_output=True, text=True, timeout=300, check=False)
                    if done.returncode != 0:
                        print(f"arm emulator: on-change command failed ({done.returncode}) for {resource_id}: {done.stderr.strip()}", flush=True)
            except (OSError, subprocess.TimeoutExpired) as exc:
                print(f"arm emulator: on-change command for {resource_id} did not finish: {exc}", flush=True)
            finally:
                self._hooks.task_done()  # the worker lives on whatever the command did

    def wait_hooks(self):
        self._hooks.join()

    def cancel_timers(self):
        for timer in list(self._timers.values()):
            timer.cancel()
