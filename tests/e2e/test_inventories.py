"""The lab's inventories describe the lab that `python -m anycast_lab up` builds (no drift between the two).

Read through `ansible-inventory`, as ansible-playbook would; no lab needed.
"""
import json
import os
import subprocess

import pytest

from anycast_lab.net import labspec, plan

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def inventory(path):
    out = subprocess.run(["ansible-inventory", "-i", os.path.join(REPO, path), "--list"], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


@pytest.mark.parametrize("region", plan.REGIONS, ids=[r.name for r in plan.REGIONS])
def test_lab_inventory_matches_the_lab(region):
    data = inventory(f"inventories/lab/{region.name}")
    hostvars = data["_meta"]["hostvars"]
    assert sorted(data["nva"]["hosts"]) == sorted(nva[0] for nva in region.nvas)
    nodes = {node["name"]: node for node in labspec.spec()["nodes"]}
    for host, nva_ip, sync_ip, mgmt_ip in region.nvas:
        got = hostvars[host]
        assert (got["ansible_host"], got["bird_local_address"], got["conntrack_sync_local_address"]) == (mgmt_ip, nva_ip, sync_ip)
        assert got["anycast_nic"] in {nic.name for nic in region.nics if nic.ip == nva_ip}
        assert nodes[host]["mgmt_ip"] == mgmt_ip
    common = hostvars[region.nvas[0][0]]
    assert (common["anycast_resource_group"], common["anycast_route_server"], common["anycast_location"]) == \
        (region.resource_group, region.route_server, region.name)
    assert (common["anycast_hub_vnet"], common["anycast_spoke_vnet"]) == (region.hub_vnet, region.spoke_vnet)
    azure = common["anycast_azure"]
    assert (azure["subscription_id"], azure["tenant"], azure["client_id"], azure["secret"]) == \
        (plan.SUBSCRIPTION_ID, plan.TENANT_ID, plan.CLIENT_ID, plan.CLIENT_SECRET)
    assert common["nat_services"][0]["backends"] == [region.backend_ip]
    assert common["anycast_prefixes"] == [f"{plan.ANYCAST_IP}/32"]


def test_example_inventory_has_every_variable_the_lab_sets():
    """The production example documents the same contract as the lab (no variable missing)."""
    lab = inventory("inventories/lab/westeurope")["_meta"]["hostvars"]["we-nva1"]
    example = inventory("inventories/example")["_meta"]["hostvars"]["nva-weu-01"]
    wanted = {key for key in lab if key.startswith(("anycast_", "bird_", "nat_", "conntrack_sync_", "healthcheck_"))} - {"anycast_lab_dir"}
    assert sorted(wanted - set(example)) == []
