"""Run an emulator process and drive it: used by the pytest fixture, the benchmarks and the lab.

    emu = EmulatorProcess(workdir).start()
    emu.seed(default_topology())
    client = emu.network_client()          # the real azure-mgmt-network SDK, over HTTPS
    emu.inject(method="PUT", path="bgpConnections", status=429, retry_after=1)
    assert emu.writes() == 1
"""
import json
import os
import select
import subprocess
import sys
import time

import requests

LAB_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TENANT_ID = "72f988bf-0000-4000-8000-00000000a11c"
SUBSCRIPTION_ID = "00000000-0000-4000-8000-0000000a5b1e"
CLIENT_ID = "0a11ce00-0000-4000-8000-00000000c11e"
CLIENT_SECRET = "lab-secret-not-for-production"
RESOURCE_GROUP = "rg-anycast-weu"
LOCATION = "westeurope"
ROUTE_SERVER = "rs-weu"


def default_topology():
    """Region westeurope of docs/dev/conventions.md: hub + spoke VNets, two NVA NICs, no Route Server yet."""
    return {
        "tenant_id": TENANT_ID, "subscription_id": SUBSCRIPTION_ID, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
        "resource_groups": [{"name": RESOURCE_GROUP, "location": LOCATION}],
        "virtual_networks": [
            {"resource_group": RESOURCE_GROUP, "name": "vnet-hub-weu", "address_prefixes": ["10.10.0.0/16"],
             "subnets": [{"name": "RouteServerSubnet", "address_prefix": "10.10.1.0/27"},
                         {"name": "snet-nva", "address_prefix": "10.10.2.0/24"},
                         {"name": "snet-sync", "address_prefix": "10.10.3.0/24"}]},
            {"resource_group": RESOURCE_GROUP, "name": "vnet-spoke-weu", "address_prefixes": ["10.11.0.0/16"],
             "subnets": [{"name": "snet-app", "address_prefix": "10.11.1.0/24"}]},
        ],
        "network_interfaces": [
            {"resource_group": RESOURCE_GROUP, "name": "nic-nva1-weu", "vnet": "vnet-hub-weu", "subnet": "snet-nva", "private_ip": "10.10.2.4"},
            {"resource_group": RESOURCE_GROUP, "name": "nic-nva2-weu", "vnet": "vnet-hub-weu", "subnet": "snet-nva", "private_ip": "10.10.2.5"},
        ],
    }


def route_server_topology(name=ROUTE_SERVER, peers=(), routing_ready=True):
    """A provisioned Route Server on vnet-hub-weu (RS IPs 10.10.1.4/.5), to seed after default_topology()."""
    return {"subscription_id": SUBSCRIPTION_ID, "tenant_id": TENANT_ID,
            "route_servers": [{"resource_group": RESOURCE_GROUP, "name": name, "vnet": "vnet-hub-weu", "routing_ready": routing_ready,
                               "peers": [dict(peer) for peer in peers]}]}


class EmulatorError(RuntimeError):
    """An admin call failed or the process did not start."""


class EmulatorProcess:  # pylint: disable=too-many-public-methods
    """One `python -m anycast_lab.arm serve` process in `workdir` (state.json, requests.log, tls/)."""

    def __init__(self, workdir, op_seconds=0.2, routing_delay=0.5, extra_args=()):
        self.workdir = workdir
        self.state_file = os.path.join(workdir, "state.json")
        self.log_file = os.path.join(workdir, "requests.log")
        self.tls_dir = os.path.join(workdir, "tls")
        self.ca_bundle = os.path.join(self.tls_dir, "ca.pem")
        self.defaults = {"op_seconds": op_seconds, "routing_delay": routing_delay}
        self.extra_args = list(extra_args)
        self.proc = None
        self.endpoint = None
        self.port = 0
        self.tenant_id, self.subscription_id = TENANT_ID, SUBSCRIPTION_ID
        self.client_id, self.client_secret = CLIENT_ID, CLIENT_SECRET
        self.resource_group, self.location = RESOURCE_GROUP, LOCATION
        self._session = requests.Session()

    # ------------------------------------------------------------ process
    def start(self, timeout=30):
        os.makedirs(self.workdir, exist_ok=True)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [LAB_DIR, os.environ.get("PYTHONPATH")])))
        cmd = [sys.executable, "-m", "anycast_lab.arm", "serve", "--port", str(self.port), "--state", self.state_file, "--log", self.log_file,
               "--tls-dir", self.tls_dir, "--op-seconds", str(self.defaults["op_seconds"]),
               "--routing-delay", str(self.defaults["routing_delay"])] + self.extra_args
        with open(os.path.join(self.workdir, "stderr.log"), "ab") as stderr:
            # pylint: disable-next=consider-using-with
            self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            readable = select.select([self.proc.stdout], [], [], 0.2)[0]
            if readable:
                line = self.proc.stdout.readline()
                if line.startswith("ready "):
                    self.endpoint = line.split()[1]
                    self.port = int(self.endpoint.rsplit(":", 1)[1])
                    return self
            if self.proc.poll() is not None:
                break
        self.stop()
        raise EmulatorError(f"the emulator did not start; see {self.workdir}/stderr.log")

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc.stdout.close()
            self.proc = None

    def restart(self):
        """Stop and start again on the same port with the same state file."""
        self.stop()
        return self.start()

    @property
    def authority(self):
        return self.endpoint

    # ------------------------------------------------------------ admin API
    def admin(self, method, path, body=None):
        # verify= per call: requests lets REQUESTS_CA_BUNDLE from the environment override a session's verify.
        answer = self._session.request(method, f"{self.endpoint}/_emulator/{path}", json=body, timeout=60, verify=self.ca_bundle)
        if answer.status_code >= 400:
            raise EmulatorError(f"{method} /_emulator/{path}: HTTP {answer.status_code}: {answer.text}")
        return answer.json() if answer.content else None

    def seed(self, topology):
        return self.admin("POST", "seed", topology)

    def reset(self, seed_default=True):
        """Empty state, log and faults; the settings the process started with; then (by default) the default topology."""
        self.admin("POST", "reset")
        if seed_default:
            self.seed(default_topology())

    def state(self):
        return self.admin("GET", "state")

    def settings(self, **values):
        return self.admin("PUT", "settings", values)

    def inject(self, **fault):
        """Add one fault: method, path (regex), status, code, message, retry_after, times, delay, lro_final."""
        return self.admin("POST", "faults", [fault])[0]

    def clear_faults(self):
        self.admin("DELETE", "faults")

    def faults(self):
        return self.admin("GET", "faults")

    def set_routes(self, hub, connection, learned=None, advertised=None):
        body = {key: value for key, value in (("learned", learned), ("advertised", advertised)) if value is not None}
        return self.admin("PUT", f"routes/{hub}/{connection}", body)

    def routing_lag(self, hub, seconds, group=None):
        """Hub `hub` reports routingState Provisioning for `seconds` from now (0 ends the lag at once)."""
        return self.admin("PUT", f"routing-lag/{self.subscription_id}/{group or self.resource_group}/{hub}", {"seconds": seconds})

    def wait_hooks(self):
        """Block until every queued --on-change-cmd run has finished."""
        self.admin("POST", "hooks/wait")

    def requests(self):
        """ARM and Entra ID requests since the last reset/clear (admin calls are not logged)."""
        return self.admin("GET", "requests")

    def clear_requests(self):
        self.admin("DELETE", "requests")

    def arm_requests(self, category=None):
        return [r for r in self.requests() if r["kind"] == "arm" and (category is None or r["category"] == category)]

    def writes(self):
        """ARM writes (PUT/PATCH/DELETE and POSTs that change something); route listings are not writes."""
        return len(self.arm_requests("write"))

    def route_reads(self):
        """POSTs to learnedRoutes/advertisedRoutes (long-running reads)."""
        return len(self.arm_requests("routes"))

    # ------------------------------------------------------------ clients
    def env(self):
        """Environment for a process that uses azure-identity's EnvironmentCredential against the emulator."""
        return {"AZURE_TENANT_ID": self.tenant_id, "AZURE_CLIENT_ID": self.client_id, "AZURE_CLIENT_SECRET": self.client_secret,
                "AZURE_SUBSCRIPTION_ID": self.subscription_id, "AZURE_AUTHORITY_HOST": self.endpoint, "ARM_ENDPOINT": self.endpoint,
                "REQUESTS_CA_BUNDLE": self.ca_bundle, "SSL_CERT_FILE": self.ca_bundle}

    def credential(self, **kwargs):
        from azure.identity import ClientSecretCredential  # pylint: disable=import-outside-toplevel
        return ClientSecretCredential(kwargs.pop("tenant_id", self.tenant_id), kwargs.pop("client_id", self.client_id),
                                      kwargs.pop("client_secret", self.client_secret), authority=self.authority,
                                      disable_instance_discovery=True, connection_verify=self.ca_bundle, **kwargs)

    def network_client(self, credential=None, **kwargs):
        """A real azure.mgmt.network.NetworkManagementClient pointed at the emulator."""
        from azure.mgmt.network import NetworkManagementClient  # pylint: disable=import-outside-toplevel
        kwargs.setdefault("connection_verify", self.ca_bundle)
        return NetworkManagementClient(credential or self.credential(), self.subscription_id, base_url=self.endpoint, **kwargs)

    def rid(self, type_path, group=None):
        """Full id of a Microsoft.Network resource in the default resource group: rid('virtualHubs/rs-weu')."""
        return f"/subscriptions/{self.subscription_id}/resourceGroups/{group or self.resource_group}/providers/Microsoft.Network/{type_path}"

    def load_log_file(self):
        with open(self.log_file, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]


__all__ = ["EmulatorProcess", "EmulatorError", "default_topology", "route_server_topology"]
