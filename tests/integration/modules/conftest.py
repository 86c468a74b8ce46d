"""Fixtures of the module tests: each module runs through real Ansible against the ARM emulator.

`run_module(module, args, check=False, diff=True, timeout=60)` writes a one-task playbook, runs
`ansible-playbook` (collections found through .build/ansible_collections, see ansible.cfg;
results printed by the json_result stdout callback, lab/anycast_lab/callback_plugins) and returns the task's
result as a playbook would register it, plus `failed` and `writes` (the ARM writes the
emulator logged during the run). See lab/anycast_lab/playbook_runner.py.

`lab` is the emulator's default region (tests/integration/conftest.py) plus two more spoke
subnets and a provisioned Route Server; `network` is the real SDK client against it.
"""
import pytest

from anycast_lab.playbook_runner import Runner, extra_topology


@pytest.fixture
def lab(arm_emulator):
    """The emulator's default region (fresh for each test) plus what the module tests need."""
    arm_emulator.seed(extra_topology(arm_emulator))
    return arm_emulator


@pytest.fixture
def run_module(lab, tmp_path):
    return Runner(lab, tmp_path)


@pytest.fixture
def network(lab):
    """The real SDK client, to check independently what the modules did."""
    return lab.network_client(polling_interval=0.1)
