"""Run one anycast.nva module through a real `ansible-playbook` and report its result and ARM writes.

Used by the module tests (tests/integration/modules/conftest.py) and by bench/route_table_bench.py and
bench/control_plane_bench.py. Results come back through the json_result stdout callback (callback_plugins/).
"""
import json
import os
import subprocess
import sys

from .arm.client import RESOURCE_GROUP, ROUTE_SERVER, route_server_topology
from .paths import REPO

CALLBACKS = os.path.join(os.path.dirname(__file__), "callback_plugins")

RG = RESOURCE_GROUP
HUB = ROUTE_SERVER
HUB_VNET = "vnet-hub-weu"
SPOKE_VNET = "vnet-spoke-weu"
SPOKE_SUBNETS = ("snet-app", "snet-app2", "snet-app3")
NICS = ("nic-nva1-weu", "nic-nva2-weu")


def extra_topology(emulator):
    """On top of the emulator's default region: two more spoke subnets and a Route Server with routing provisioned."""
    subnets = [{"id": emulator.rid("virtualNetworks/%s/subnets/%s" % (SPOKE_VNET, name)),
                "body": {"properties": {"addressPrefix": "10.11.%d.0/24" % index}}} for index, name in enumerate(SPOKE_SUBNETS[1:], start=2)]
    return dict(route_server_topology(), resources=subnets)


class Runner:
    """Calls one module per ansible-playbook run and reports its result and the ARM writes it caused."""

    def __init__(self, emulator, workdir):
        self.emulator = emulator
        self.workdir = workdir
        self.count = 0

    def auth(self, timeout=60):
        emu = self.emulator
        return dict(subscription_id=emu.subscription_id, auth_source="credentials", client_id=emu.client_id, secret=emu.client_secret,
                    tenant=emu.tenant_id, arm_endpoint=self.emulator.endpoint, authority_host=self.emulator.endpoint,
                    ca_bundle=self.emulator.ca_bundle, timeout=timeout)

    def command(self, module, args, check=False, diff=True, timeout=60, env=None, drop=(), group_defaults=False):
        """The ansible-playbook command line and environment for one module call (also used by the concurrency test).

        env adds environment variables; drop removes common options (to test their fallbacks);
        group_defaults passes the common options through module_defaults of the anycast.nva.azure action group."""
        self.count += 1
        playbook = os.path.join(str(self.workdir), "play-%d.yml" % self.count)
        common = self.auth(timeout)
        for key in drop:
            common.pop(key)
        play = {"hosts": "localhost", "gather_facts": False}
        if group_defaults:
            play["module_defaults"] = {"group/anycast.nva.azure": common}
            common = {}
        play["tasks"] = [{"name": "module under test", "anycast.nva.%s" % module: dict(common, **args)}]
        with open(playbook, "w", encoding="utf-8") as handle:
            # JSON is YAML: no quoting surprises in the arguments.
            json.dump([play], handle)
        cmd = ["ansible-playbook", "-i", "localhost,", "-c", "local", "-e", "ansible_python_interpreter=" + sys.executable, playbook]
        if check:
            cmd.append("--check")
        if diff:
            cmd.append("--diff")
        env = dict(os.environ, **(env or {}))
        env.update(ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json_result",
                   ANSIBLE_CALLBACK_PLUGINS=CALLBACKS, ANSIBLE_NOCOLOR="1", ANSIBLE_DEPRECATION_WARNINGS="0")
        return cmd, env

    @staticmethod
    def parse(proc):
        """The task result from ansible-playbook's output; a run that printed no result is a test error."""
        try:
            tasks = json.loads(proc.stdout)["tasks"]
        except ValueError:
            raise AssertionError("ansible-playbook printed no JSON result (rc %s)\nstdout: %s\nstderr: %s" % (proc.returncode, proc.stdout, proc.stderr))
        assert len(tasks) == 1, tasks
        result = tasks[0]["result"]
        result["failed"] = tasks[0]["status"] == "failed"
        return result

    def __call__(self, module, args, check=False, diff=True, timeout=60, env=None, drop=(), group_defaults=False):
        cmd, env = self.command(module, args, check=check, diff=diff, timeout=timeout, env=env, drop=drop, group_defaults=group_defaults)
        writes_before = self.emulator.writes()
        proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout + 120, check=False)
        result = self.parse(proc)
        result["writes"] = self.emulator.writes() - writes_before
        return result
