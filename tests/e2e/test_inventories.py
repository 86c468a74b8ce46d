"""The lab's inventories describe the lab that `python -m anycast_lab up` builds (no drift between the two).

The checked-in inventories/lab/<region> for the default size (2 NVAs per region), the generated ones
(`python -m anycast_lab inventory --nvas 4`) for another. Read through `ansible-inventory`, as
ansible-playbook would; no lab needed.
"""
import ipaddress
import json
import os
import subprocess

import pytest

from anycast_lab import inventory as lab_inventory
from anycast_lab.paths import REPO
from anycast_lab.regions import labspec, plan


def inventory(path):
    out = subprocess.run(["ansible-inventory", "-i", os.path.join(REPO, path), "--list"], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def check_inventory(data, region, nvas):
    """An inventory (ansible-inventory --list) holds exactly the region's NVAs of a lab of `nvas` per region, as the lab builds them."""
    hostvars = data["_meta"]["hostvars"]
    assert len(region.nvas) == nvas
    assert sorted(data["nva"]["hosts"]) == sorted(nva[0] for nva in region.nvas)
    nodes = {node["name"]: node for node in labspec.spec(nvas)["nodes"]}
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
    # the sync subnet azure.yml's NSG goes on (anycast_sync_nsg) is the lab's subnet that holds every NVA's sync address
    holding = [(vnet, name) for vnet, name, prefix in region.subnets
               if all(ipaddress.ip_address(nva[2]) in ipaddress.ip_network(prefix) for nva in region.nvas)]
    assert holding == [(common.get("anycast_sync_vnet", common["anycast_hub_vnet"]), common["anycast_sync_subnet"])]
    return common


@pytest.mark.parametrize("region", plan.regions(plan.DEFAULT_NVAS), ids=[r.name for r in plan.REGIONS])
def test_lab_inventory_matches_the_lab(region):
    check_inventory(inventory(f"inventories/lab/{region.name}"), region, plan.DEFAULT_NVAS)


@pytest.mark.parametrize("region", plan.regions(4), ids=[r.name for r in plan.REGIONS])
def test_generated_inventory_matches_a_lab_of_4_nvas(region, tmp_path):
    base = str(tmp_path / "lab")
    path = lab_inventory.write(str(tmp_path / "inventories"), 4, base)[region.name]
    common = check_inventory(inventory(path), region, 4)
    assert common["anycast_lab_dir"] == base
    # As a play sees them: its own lab dir (SSH key, emulator CA) whatever its path, conntrackd with the 3 other NVAs.
    msg = "{{ {'ca': anycast_azure.ca_bundle, 'key': ansible_ssh_private_key_file, 'peers': conntrack_sync_peers} | to_json }}"
    out = subprocess.run(["ansible", "-i", path, region.nvas[0][0], "-m", "ansible.builtin.debug", "-a", f"msg={msg}"],
                         capture_output=True, text=True, check=True).stdout
    resolved = json.loads(json.loads(out.split("=>", 1)[1])["msg"])
    resolved["peers"].sort()  # `difference` keeps no order
    assert resolved == {"ca": f"{base}/arm/tls/ca.pem", "key": f"{base}/ssh/id_ed25519",
                        "peers": [sync_ip for _host, _ip, sync_ip, _mgmt in region.nvas[1:]]}


def test_example_inventory_has_every_variable_the_lab_sets():
    """The production example documents the same contract as the lab (no variable missing)."""
    lab = inventory("inventories/lab/westeurope")["_meta"]["hostvars"]["we-nva1"]
    example = inventory("inventories/example")["_meta"]["hostvars"]["nva-weu-01"]
    wanted = {key for key in lab if key.startswith(("anycast_", "bird_", "nat_", "conntrack_sync_", "healthcheck_"))} - {"anycast_lab_dir"}
    assert sorted(wanted - set(example)) == []


def test_generated_inventories_of_a_lab_of_one_and_two_nvas(tmp_path):
    """`inventory --nvas westeurope=1,northeurope=2`: each region's inventory holds its own NVAs; the region of one NVA
    has no sync peer (nva.yml then leaves conntrack_sync out) and a region size of 1 for the alerts."""
    sizes = {"westeurope": 1, "northeurope": 2}
    base = str(tmp_path / "lab")
    paths = lab_inventory.write(str(tmp_path / "inventories"), sizes, base)
    msg = "{{ {'nvas': groups['nva'], 'peers': conntrack_sync_peers, 'region_nvas': healthcheck_region_nvas | int} | to_json }}"
    for region in plan.regions(sizes):
        check_inventory(inventory(paths[region.name]), region, sizes[region.name])
        out = subprocess.run(["ansible", "-i", paths[region.name], region.nvas[0][0], "-m", "ansible.builtin.debug", "-a", f"msg={msg}"],
                             capture_output=True, text=True, check=True).stdout
        resolved = json.loads(json.loads(out.split("=>", 1)[1])["msg"])
        assert resolved == {"nvas": [host for host, *_rest in region.nvas],
                            "peers": [sync_ip for _host, _ip, sync_ip, _mgmt in region.nvas[1:]], "region_nvas": len(region.nvas)}
