"""playbooks/azure.yml with anycast_sync_nsg on, through ansible-playbook against the ARM emulator: the guard rail in
check mode before any write, the NSG on the sync subnet, a rerun that changes and writes nothing; off, no NSG task runs."""
import json
import os
import subprocess
import sys

import pytest
from azure.core.exceptions import ResourceNotFoundError

from anycast_lab.paths import REPO
from anycast_lab.playbook_runner import CALLBACKS, HUB, HUB_VNET, RG, SPOKE_VNET, Runner

NSG = "nsg-anycast-sync-westeurope"


def inventory(lab, tmp_path, sync_nsg):
    """One region of the emulator's default topology: the controller and two NVAs (NIC, BGP and sync addresses)."""
    nvas = {"nva1": {"anycast_nic": "nic-nva1-weu", "bird_local_address": "10.10.2.4", "conntrack_sync_local_address": "10.10.3.4"},
            "nva2": {"anycast_nic": "nic-nva2-weu", "bird_local_address": "10.10.2.5", "conntrack_sync_local_address": "10.10.3.5"}}
    region = dict(anycast_azure=Runner(lab, tmp_path).auth(timeout=120), anycast_region="westeurope", anycast_location="westeurope",
                  anycast_resource_group=RG, anycast_route_server=HUB, anycast_hub_vnet=HUB_VNET, anycast_spoke_vnet=SPOKE_VNET,
                  anycast_spoke_subnets=["snet-app"], anycast_route_table="rt-return", anycast_prefixes=["10.250.0.10/32"],
                  anycast_on_premises_prefixes=["172.16.0.0/16"], anycast_nva_asn=65001, anycast_nat_mode="snat",
                  anycast_sync_nsg=sync_nsg, anycast_sync_subnet="snet-sync")
    hosts = {"all": {"vars": region, "children": {
        "controller": {"hosts": {"localhost": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}},
        "nva": {"hosts": nvas}}}}
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps(hosts), encoding="utf-8")
    return str(path)


def run_azure_yml(lab, path, check=False):
    """ansible-playbook playbooks/azure.yml: every task's results and the ARM writes of the run."""
    cmd = ["ansible-playbook", "-i", path, os.path.join(REPO, "playbooks", "azure.yml"), "--diff"] + (["--check"] if check else [])
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json_result", ANSIBLE_CALLBACK_PLUGINS=CALLBACKS,
               ANSIBLE_NOCOLOR="1", ANSIBLE_DEPRECATION_WARNINGS="0", PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    before = lab.writes()
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    try:
        tasks = json.loads(proc.stdout)["tasks"]
    except ValueError:
        raise AssertionError(f"no JSON result (rc {proc.returncode})\nstdout: {proc.stdout}\nstderr: {proc.stderr}") from None
    assert proc.returncode == 0, [t for t in tasks if t["status"] == "failed"] or proc.stderr
    return tasks, lab.writes() - before


def nsg_tasks(tasks):
    return [t for t in tasks if "sync subnet" in t["task"]]


def test_azure_yml_puts_the_nsg_on_the_sync_subnet_and_a_rerun_writes_nothing(lab, network, tmp_path):
    path = inventory(lab, tmp_path, True)
    planned, writes = run_azure_yml(lab, path, check=True)
    assert writes == 0
    assert [(t["status"], t["result"]["changed"]) for t in nsg_tasks(planned)] == [("ok", True), ("ok", True)]
    with pytest.raises(ResourceNotFoundError):
        network.network_security_groups.get(RG, NSG)

    first, writes = run_azure_yml(lab, path)
    applied = nsg_tasks(first)[1]["result"]
    assert applied["changed"] is True and applied["associated"] is True
    assert network.subnets.get(RG, HUB_VNET, "snet-sync").network_security_group.id == applied["nsg"]["id"]
    allow = network.security_rules.get(RG, NSG, "anycast-sync-allow")
    assert sorted(allow.source_address_prefixes) == ["10.10.3.4", "10.10.3.5"] and allow.destination_port_range == "3780"
    assert writes >= 2

    again, writes = run_azure_yml(lab, path)
    assert writes == 0 and not [t["task"] for t in again if t["result"].get("changed")], again


def test_azure_yml_without_anycast_sync_nsg_runs_no_nsg_task(lab, network, tmp_path):
    tasks, _writes = run_azure_yml(lab, inventory(lab, tmp_path, False))
    assert [t["status"] for t in nsg_tasks(tasks)] == ["skipped", "skipped"]
    assert network.subnets.get(RG, HUB_VNET, "snet-sync").network_security_group is None
