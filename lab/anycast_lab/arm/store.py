"""The emulator's state: one JSON document, saved atomically after every change.

Everything lives in one dict guarded by one re-entrant lock; the HTTP threads
and the operation timers take the lock for each read-modify-write.
"""
import json
import os
import secrets
import threading


def empty_state():
    """A state with no tenant, subscription or resource."""
    return {
        "version": 1,
        # Signs the bearer tokens, so tokens stay valid across a restart with the same state file.
        "signing_key": secrets.token_hex(32),
        "service_principals": [],
        "subscriptions": {},      # lower(subscription id) -> {id, tenant_id, display_name, resource_groups: {lower(name): {...}}}
        "resources": {},          # lower(resource id) -> stored ARM body (internal fields under "_emu")
        "operations": {},         # operation id -> {status, resource_id, scope, done_at, error, kind, result}
        "routes": {},             # "hub/connection" (lower) -> {"learned": {...}, "advertised": {...}}
    }


class Store:
    """Holds the state dict and writes it to `path` (temp file + rename) on save()."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.RLock()
        self.data = self._load()

    def _load(self):
        if self.path and os.path.exists(self.path):
            with open(self.path, encoding="utf-8") as handle:
                data = json.load(handle)
            base = empty_state()
            base.update(data)
            return base
        return empty_state()

    def save(self):
        """Write the whole state; a crash mid-write leaves the previous file intact."""
        if not self.path:
            return
        with self.lock:
            text = json.dumps(self.data, indent=1, sort_keys=True)
            directory = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(directory, exist_ok=True)
            tmp = f"{self.path}.{os.getpid()}.{threading.get_ident()}.tmp"
            with open(tmp, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(tmp, self.path)

    def reset(self):
        """Forget everything except the token signing key."""
        with self.lock:
            key = self.data["signing_key"]
            self.data = empty_state()
            self.data["signing_key"] = key
            self.save()

    # --- small accessors used everywhere ---
    def subscription(self, sub_id):
        return self.data["subscriptions"].get(sub_id.lower())

    def resource_group(self, sub_id, rg_name):
        sub = self.subscription(sub_id)
        return sub["resource_groups"].get(rg_name.lower()) if sub else None

    def get(self, resource_id):
        return self.data["resources"].get(resource_id.lower())

    def put(self, resource_id, body):
        self.data["resources"][resource_id.lower()] = body

    def delete(self, resource_id):
        self.data["resources"].pop(resource_id.lower(), None)

    def children(self, parent_id, child_type):
        """Resources directly under parent_id/child_type/, in creation order."""
        prefix = f"{parent_id}/{child_type}/".lower()
        return [body for key, body in self.data["resources"].items()
                if key.startswith(prefix) and "/" not in key[len(prefix):]]

    def find(self, predicate):
        return [body for body in self.data["resources"].values() if predicate(body)]
