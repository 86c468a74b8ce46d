"""The commands the lab plugs in: --on-change-cmd after each write, --peer-state-cmd for a peer's BGP state
(and --routes-cmd, run by route_listing.py). Each runs through the shell; a failure is reported on stderr
and never breaks the emulator."""
import concurrent.futures
import os
import queue
import shlex
import subprocess
import threading

from .addressing import arm_type, id_ref

PEER_STATES = ("Unknown", "Connecting", "Connected", "NotConnected")  # HubBgpConnectionStatus
PEER_STATE_TTL = 1.0  # seconds a --peer-state-cmd answer is reused


def run_cmd(cmd, args):
    """`cmd` with `args` shell-quoted: its stdout, or None when it fails or runs over 60 s."""
    try:
        done = subprocess.run(cmd + " " + " ".join(shlex.quote(str(a)) for a in args), shell=True, capture_output=True, text=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        return None
    if done.returncode != 0:
        print(f"arm emulator: command {cmd!r} failed ({done.returncode}): {done.stderr.strip()}", flush=True)
        return None
    return done.stdout


class ChangeHooks:
    """Runs --on-change-cmd after each completed write: one worker, so the lab sees changes in order and never
    two reconfigurations at once."""

    def __init__(self, store, settings):
        self._store = store
        self._settings = settings
        self._queue = queue.Queue()
        threading.Thread(target=self._run, name="arm-hooks", daemon=True).start()

    def notify(self, method, resource_id):
        self._queue.put((method, resource_id))

    def wait(self):
        """Return when every queued run is done (POST /_emulator/hooks/wait)."""
        self._queue.join()

    def _run(self):
        while True:
            method, resource_id = self._queue.get()
            cmd = self._settings.on_change_cmd
            try:
                if cmd:
                    env = dict(os.environ, ARM_STATE=self._store.path or "", ARM_CHANGED=resource_id, ARM_METHOD=method)
                    done = subprocess.run(cmd, shell=True, env=env, capture_output=True, text=True, timeout=300, check=False)
                    if done.returncode != 0:
                        print(f"arm emulator: on-change command failed ({done.returncode}) for {resource_id}: {done.stderr.strip()}", flush=True)
            except (OSError, subprocess.TimeoutExpired) as exc:
                print(f"arm emulator: on-change command for {resource_id} did not finish: {exc}", flush=True)
            finally:
                self._queue.task_done()  # the worker lives on whatever the command did


class PeerStates:  # pylint: disable=too-few-public-methods
    """With --peer-state-cmd, a provisioned peer's connectionState in a GET answer is the lab's BGP state."""

    def __init__(self, settings, clock):
        self._settings = settings
        self._clock = clock
        self._cache = {}

    def fill(self, body):
        """Set the peers' connectionState in a GET answer, asked now, outside the state lock (the command may
        be slow), in parallel, at most once per PEER_STATE_TTL per peer."""
        if not self._settings.peer_state_cmd or not isinstance(body, dict):
            return
        items = body["value"] if isinstance(body.get("value"), list) else [body]
        peers = [item for item in items if isinstance(item, dict) and item.get("type") == arm_type("virtualHubs/bgpConnections")
                 and item["properties"].get("provisioningState") == "Succeeded"]
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            for peer, state in zip(peers, pool.map(self._ask, peers)):
                peer["properties"]["connectionState"] = state

    def _ask(self, peer):
        key = peer["id"].lower()
        cached = self._cache.get(key)
        if cached and self._clock() - cached[1] < PEER_STATE_TTL:
            return cached[0]
        names = id_ref(peer["id"]).names
        state = (run_cmd(self._settings.peer_state_cmd, [names[0], names[1], peer["properties"]["peerIp"]]) or "").strip()
        if state not in PEER_STATES:
            print(f"arm emulator: --peer-state-cmd printed {state!r} for {peer['id']}, not one of {PEER_STATES}", flush=True)
            state = "Unknown"
        self._cache[key] = (state, self._clock())
        return state
