"""The emulator's timings and hooks: given on the command line, changeable at run time."""
from .errors import bad_request


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
