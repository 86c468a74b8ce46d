"""The lab's size (NVAs per region, 1-8) as a parameter: the plan, the spec and the seed it renders, the recorded size, the inventories.

No lab needed: everything is computed, and the lab dir is a temporary one.
"""
import ipaddress
import json
import os

import pytest
import yaml

from anycast_lab import inventory
from anycast_lab.arm.route_server_validation import MAX_BGP_CONNECTIONS
from anycast_lab.hosts import LabError
from anycast_lab.hosts import spec as spec_mod
from anycast_lab.lab import Lab
from anycast_lab.paths import REPO
from anycast_lab.regions import fabric, labspec, plan

SIZES = list(range(plan.MIN_NVAS, plan.MAX_NVAS + 1))
MGMT = ipaddress.ip_network(labspec.MGMT_ADDRESS, strict=False)


@pytest.fixture(name="lab_dir")
def fixture_lab_dir(tmp_path, monkeypatch):
    """An empty lab dir of our own; no $ANYCAST_LAB_NVAS."""
    monkeypatch.setenv("ANYCAST_LAB_DIR", str(tmp_path))
    monkeypatch.delenv(plan.NVAS_ENV, raising=False)
    return str(tmp_path)


def subnet(region, name):
    return ipaddress.ip_network(next(cidr for _vnet, sub, cidr in region.subnets if sub == name))


def test_the_range_fits_route_server_and_conntrack_sync():
    assert (plan.MIN_NVAS, plan.DEFAULT_NVAS, plan.MAX_NVAS) == (1, 2, 8)
    assert plan.MAX_NVAS == MAX_BGP_CONNECTIONS, "a Route Server peers with at most 8 NVAs"
    with open(os.path.join(REPO, "roles", "conntrack_sync", "vars", "main.yml"), encoding="utf-8") as handle:
        assert plan.MAX_NVAS - 1 <= yaml.safe_load(handle)["conntrack_sync__max_peers"], "every NVA syncs with all the others"


@pytest.mark.parametrize("nvas", SIZES)
def test_names_and_addresses_are_unique_and_inside_their_subnets(nvas):
    regions = plan.regions(nvas)
    hosts, nic_names, addresses, mgmt = [], [], [], []
    for region in regions:
        assert len(region.nvas) == nvas
        assert [host for host, *_rest in region.nvas] == [f"{region.short}-nva{i}" for i in range(1, nvas + 1)]
        for host, nva_ip, sync_ip, mgmt_ip in region.nvas:
            assert ipaddress.ip_address(nva_ip) in subnet(region, "snet-nva")
            assert ipaddress.ip_address(sync_ip) in subnet(region, "snet-sync")
            # Azure keeps .0-.3 of a subnet; docs/dev/conventions.md gives the lab's hosts .10-.99 of the mgmt network.
            assert int(nva_ip.split(".")[-1]) >= 4 and int(sync_ip.split(".")[-1]) >= 4
            assert ipaddress.ip_address(mgmt_ip) in MGMT and 10 <= int(mgmt_ip.split(".")[-1]) <= 99
            hosts.append(host)
            addresses.append(sync_ip)
            mgmt.append(mgmt_ip)
        for nic in region.nics:
            assert ipaddress.ip_address(nic.ip) in subnet(region, nic.subnet), nic
            nic_names.append(nic.name)
            addresses.append(nic.ip)
        ports = [nic.port for nic in region.nics]
        assert len(set(ports)) == len(ports) and all(len(port) <= 15 for port in ports), ports
        assert len(region.nics) == nvas + 2  # the NVAs, the test VM, the application
        assert region.testvm_ip not in [nva_ip for _host, nva_ip, *_rest in region.nvas]
        tables = [fabric.udr_table(region, nic) for nic in region.nics]
        assert len(set(tables)) == len(tables)
    for values in (hosts, nic_names, addresses, mgmt):
        assert len(set(values)) == len(values), values
    assert labspec.MGMT_ADDRESS.split("/", maxsplit=1)[0] not in mgmt


@pytest.mark.parametrize("nvas", SIZES)
def test_spec_and_seed_follow_the_size(nvas):
    data = labspec.spec(nvas)
    parsed = spec_mod.parse(data)  # interface names <= 15 chars, segments, addresses: the host machinery's own checks
    assert sorted(node.name for node in parsed.hosts) == sorted(host for region in plan.regions(nvas) for host, *_rest in region.nvas)
    for region in plan.regions(nvas):
        fabric_node = parsed.node(f"{region.short}-hub")
        assert {iface.name for iface in fabric_node.interfaces} == {nic.port for nic in region.nics} | {"gw-er"}
        # conntrackd: every NVA of the region on the same sync segment
        sync = [node.name for node in parsed.hosts if any(iface.segment == f"{region.short}-sync" for iface in node.interfaces)]
        assert sorted(sync) == sorted(host for host, *_rest in region.nvas)
    seed = labspec.seed(nvas)
    for region in plan.regions(nvas):
        nics = [nic["name"] for nic in seed["network_interfaces"] if nic["resource_group"] == region.resource_group]
        assert sorted(nics) == sorted(nic.name for nic in region.nics)
        assert len([name for name in nics if "-nva" in name]) == nvas


def test_default_size_keeps_the_documented_addresses():
    we, ne = plan.regions(2)
    assert we.nvas == [("we-nva1", "10.10.2.4", "10.10.3.4", "198.18.0.11"), ("we-nva2", "10.10.2.5", "10.10.3.5", "198.18.0.12")]
    assert ne.nvas == [("ne-nva1", "10.20.2.4", "10.20.3.4", "198.18.0.21"), ("ne-nva2", "10.20.2.5", "10.20.3.5", "198.18.0.22")]
    assert we.testvm_ip == "10.10.2.10"


@pytest.mark.parametrize("value", [9, 0, -1, "x", "", None])
def test_sizes_out_of_range_are_refused_with_the_range(value):
    with pytest.raises(LabError, match="1 to 8"):
        plan.check_nvas(value)


def test_size_comes_from_the_record_then_the_environment_then_the_default(lab_dir, monkeypatch):
    assert plan.recorded_nvas() is None
    assert plan.lab_nvas() == {"westeurope": 2, "northeurope": 2} and len(plan.REGIONS[0].nvas) == 2
    monkeypatch.setenv(plan.NVAS_ENV, "5")
    assert plan.lab_nvas() == {"westeurope": 5, "northeurope": 5} and len(plan.REGIONS[0].nvas) == 5
    plan.record_nvas(3, lab_dir)
    with open(os.path.join(lab_dir, plan.SIZE_FILE), encoding="utf-8") as handle:
        assert json.load(handle) == {"nvas": 3}
    # The running lab wins over the environment: every reader agrees with what is up.
    assert plan.lab_nvas() == {"westeurope": 3, "northeurope": 3} and [len(region.nvas) for region in plan.REGIONS] == [3, 3]
    assert len(plan.REGIONS[0].sized(6).nvas) == 6
    monkeypatch.setenv(plan.NVAS_ENV, "12")
    with pytest.raises(LabError, match=r"\$ANYCAST_LAB_NVAS: 12 is out of range"):
        plan.requested_nvas()


def test_up_refuses_another_size_than_the_running_one(lab_dir):
    lab = Lab(nvas=4)
    assert lab.size() is None
    plan.record_nvas(2, lab_dir)
    with pytest.raises(LabError, match="is up with 2 NVAs per region, not 4 NVAs per region: take it down first"):
        lab._claim_size()  # pylint: disable=protected-access  # the check `up` makes before it changes anything
    two, four = {"westeurope": 2, "northeurope": 2}, {"westeurope": 4, "northeurope": 4}
    assert plan.recorded_nvas() == two
    assert Lab(nvas=2)._claim_size() == two  # pylint: disable=protected-access
    os.unlink(plan.size_file())
    assert lab._claim_size() == four and plan.recorded_nvas() == four  # pylint: disable=protected-access


def test_inventory_path_follows_the_running_lab(lab_dir):
    static = os.path.realpath(os.path.join(REPO, "inventories", "lab", "westeurope"))
    assert os.path.realpath(inventory.inventory_path("westeurope")) == static  # down: the default size
    plan.record_nvas(4, lab_dir)
    path = inventory.inventory_path(plan.region("we"))
    assert path == os.path.join(lab_dir, "inventories", "westeurope")
    with open(os.path.join(path, "hosts.yml"), encoding="utf-8") as handle:
        hosts = yaml.safe_load(handle)
    assert list(hosts["nva"]["hosts"]) == ["we-nva1", "we-nva2", "we-nva3", "we-nva4"]
    assert hosts["nva"]["hosts"]["we-nva4"] == {"ansible_host": "198.18.0.14", "anycast_nic": "nic-we-nva4",
                                                "bird_local_address": "10.10.2.7", "conntrack_sync_local_address": "10.10.3.7"}
    group_vars = os.path.join(path, "group_vars", "all")
    assert os.path.realpath(os.path.join(group_vars, "region.yml")) == os.path.join(static, "group_vars", "all", "region.yml")
    with open(os.path.join(group_vars, "lab_dir.yml"), encoding="utf-8") as handle:
        assert yaml.safe_load(handle) == {"anycast_lab_dir": lab_dir}


def test_generated_inventory_for_the_default_size_is_the_checked_in_one(tmp_path):
    """The generator writes what inventories/lab/<region>/hosts.yml holds (so a size of 4 is the same, with more hosts)."""
    paths = inventory.write(str(tmp_path), 2, str(tmp_path))
    for name, path in paths.items():
        with open(os.path.join(path, "hosts.yml"), encoding="utf-8") as handle:
            generated = yaml.safe_load(handle)
        with open(os.path.join(REPO, "inventories", "lab", name, "hosts.yml"), encoding="utf-8") as handle:
            assert generated == yaml.safe_load(handle)
