"""ARM request handling: addressing a request, existence checks, reads, and writes started as operations.

A write to a resource while an operation runs on it (for a hub: on the hub or any of its children) gets
409 AnotherOperationInProgress. How operations run and finish is in operations.py; learned/advertised
routes in route_listing.py; the lab's commands in hooks.py.
"""
import json
import re
import time

from . import catalog
from .addressing import PROVIDER, TYPES, arm_type, id_ref, parse_provider_path
from .bodies import location_of, new_body, new_etag, render
from .errors import ArmError, bad_request, not_found
from .hooks import ChangeHooks, PeerStates
from .identity import check_bearer
from .operations import Operations
from .response import Response
from .route_listing import RouteListing
from .validation import check_delete, validate

API_VERSION_RE = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")


class Service(Operations, RouteListing):
    """Everything ARM: called by the HTTP layer with an already-parsed request."""

    def __init__(self, store, settings, base_url=""):
        self.store = store
        self.settings = settings
        self.base = base_url
        self.clock = time.time
        self._timers = {}
        self._hooks = ChangeHooks(store, settings)
        self._peer_states = PeerStates(settings, self.clock)
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
            self._peer_states.fill(response.body)
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
                parsed = parse_provider_path(sub["id"], group["name"], rest[4:])
                if parsed is None:
                    raise self._unknown_type(rest[4:], api_version)
                catalog.check_api_version(api_version, parsed[0].type_key, group["location"])
                return self._resource(method, parsed[0], parsed[1], body, headers, api_version, fault)
        if len(rest) >= 3 and lower[0] == "providers" and lower[1] == "microsoft.network":
            if len(rest) == 6 and lower[2] == "locations" and lower[4] in ("operations", "operationresults"):
                return self._operation_status(rest[5], lower[4] == "operationresults", api_version)
            if len(rest) == 3 and method == "GET":
                key = parse_provider_path(sub["id"], "x", rest[2:3])
                if key is None:
                    raise self._unknown_type(rest[2:], api_version)
                wanted = arm_type(key[0].type_key)
                prefix = f"/subscriptions/{sub['id']}/".lower()
                return self._list("GET", [render(self, b) for k, b in self.store.data["resources"].items()
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
                items = [b for k, b in self.store.data["resources"].items() if b["type"] == arm_type(ref.type_key) and k.startswith(prefix)]
            return self._list(method, [render(self, b) for b in items])
        existing = self.store.get(ref.id)
        if action is not None:
            if method != "POST":
                raise ArmError(405, "MethodNotAllowed", f"{method} is not allowed on {action}Routes.")
            return self._list_routes(ref, action, existing, api_version, fault)
        if method == "GET":
            if existing is None:
                raise self._resource_not_found(ref)
            return Response(200, render(self, existing))
        if method == "PUT":
            self._check_preconditions(headers, existing)
            created, op = self.apply_put(ref, body, fault=fault)
            return Response(201 if created else 200, render(self, self.store.get(ref.id)), self._lro_headers(op, api_version))
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
        return not_found("ResourceNotFound", f"The Resource '{PROVIDER}/{ref.type_key.split('/')[0]}/{'/'.join(ref.names)}' under resource group "
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
        existing["etag"] = new_etag()
        self.store.save()
        return Response(200, render(self, existing))

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
            props = validate(self, ref, body, existing)
            state = "Succeeded" if immediate else "Updating"
            location = None
            if TYPES[ref.type_key] is None:
                location = location_of(body, existing["location"] if existing else None)
                catalog.check_location(location, ref.type_key)
                if existing and location.replace(" ", "").lower() != existing["location"].replace(" ", "").lower():
                    raise bad_request("InvalidResourceLocation", f"The resource '{ref.names[-1]}' already exists in location "
                                                                 f"'{existing['location']}'; property 'location' cannot change to '{location}'.")
            embedded = {"subnets": props.pop("_subnets", None), "routes": props.pop("_routes", None),
                        "securityRules": props.pop("_securityRules", None)}
            removed = self._removed_children(ref, embedded)  # checked before anything changes
            props["provisioningState"] = state
            self.store.put(ref.id, new_body(ref, location, props, existing, body.get("tags"), body.get("sku")))
            changed = [ref.id]
            for old in removed:
                self.store.delete(old["id"])
            for children in embedded.values():
                for child_ref, child_props in children or []:
                    child_props["provisioningState"] = state
                    self.store.put(child_ref.id, new_body(child_ref, None, child_props, self.store.get(child_ref.id)))
                    changed.append(child_ref.id)
            if ref.parent_id:
                self.store.get(ref.parent_id)["etag"] = new_etag()
            if immediate:
                self._complete_effects(ref, "PUT")
                self.store.save()
                return existing is None, None
            op = self._start(ref.id, ref.top_id, "PUT", changed, self._location(ref), fault)
            return existing is None, op

    def _removed_children(self, ref, embedded):
        """An embedded list (VNet.subnets, routeTable.routes, NSG.securityRules) is authoritative: the children it leaves out go,
        unless one is still in use (then the whole PUT is refused)."""
        removed = []
        for child_type, children in embedded.items():
            if children is None:
                continue
            keep = {child[0].id.lower() for child in children}
            for old in self.store.children(ref.id, child_type):
                if old["id"].lower() not in keep:
                    check_delete(self, id_ref(old["id"]), old)
                    removed.append(old)
        return removed

    def apply_delete(self, ref, fault=None):
        with self.store.lock:
            self._check_no_operation(ref)
            body = self.store.get(ref.id)
            check_delete(self, ref, body)
            body["properties"]["provisioningState"] = "Deleting"
            return self._start(ref.id, ref.top_id, "DELETE", [ref.id], self._location(ref), fault)

    def _location(self, ref):
        top = self.store.get(ref.top_id)
        return (top or {}).get("location", "westeurope")

    # ------------------------------------------------------------ learned / advertised routes (computed in route_listing.py)
    def _list_routes(self, ref, action, conn, api_version, fault):  # pylint: disable=too-many-arguments
        if conn is None:
            raise self._resource_not_found(ref)
        op = self._start(ref.id, ref.id + "#routes", "POST", [], self._location(ref), fault, extra={"action": action}, kind="routes")
        return Response(202, None, self._lro_headers(op, api_version, location=True, azure_async=False))

    # ------------------------------------------------------------ hooks
    def notify(self, method, resource_id):
        """Queue --on-change-cmd for a completed write (or a seed)."""
        self._hooks.notify(method, resource_id)

    def wait_hooks(self):
        self._hooks.wait()
