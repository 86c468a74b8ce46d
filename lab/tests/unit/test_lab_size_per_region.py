"""Regions of different sizes side by side (issue 19): `--nvas westeurope=1,northeurope=2`, parsed, planned, recorded,
refused when it is wrong, and the inventories that follow. No lab needed: the lab dir is a temporary one.
"""
import json
import os
import subprocess
import sys

import pytest
import yaml

from anycast_lab import inventory
from anycast_lab.hosts import LabError
from anycast_lab.hosts import spec as spec_mod
from anycast_lab.lab import Lab
from anycast_lab.paths import LAB_DIR, REPO
from anycast_lab.regions import labspec, plan

MIXED = {"westeurope": 1, "northeurope": 2}


@pytest.fixture(name="lab_dir")
def fixture_lab_dir(tmp_path, monkeypatch):
    """An empty lab dir of our own; no $ANYCAST_LAB_NVAS."""
    monkeypatch.setenv("ANYCAST_LAB_DIR", str(tmp_path))
    monkeypatch.delenv(plan.NVAS_ENV, raising=False)
    return str(tmp_path)


@pytest.mark.parametrize("value, sizes", [
    (2, {"westeurope": 2, "northeurope": 2}),
    ("1", {"westeurope": 1, "northeurope": 1}),
    (" 4 ", {"westeurope": 4, "northeurope": 4}),
    ("westeurope=1,northeurope=2", MIXED),
    ("we=1,ne=2", MIXED),
    ("northeurope=2, westeurope=1", MIXED),
    ("West Europe=1", MIXED),             # as Azure spells the location; a region not named keeps 2
    ("ne=8", {"westeurope": 2, "northeurope": 8}),
    ({"westeurope": 1, "northeurope": "2"}, MIXED),
])
def test_sizes_per_region_are_parsed(value, sizes):
    assert plan.parse_sizes(value) == sizes
    assert list(plan.parse_sizes(value)) == ["westeurope", "northeurope"]  # always in the plan's order


@pytest.mark.parametrize("value, message", [
    ("westeurope=0,northeurope=2", "--nvas: westeurope: 0 is out of range: 1 to 8"),
    ("ne=9", "--nvas: northeurope: 9 is out of range: 1 to 8"),
    ("westeurope=one", "--nvas: westeurope: 'one' is not a number"),
    ("eastus=1", "--nvas: no lab region 'eastus' (the regions: westeurope, northeurope)"),
    ("westeurope=1,we=2", "--nvas: westeurope is given twice"),
    ("westeurope=1,2", "--nvas: '2' is not REGION=N"),
    ("westeurope", "--nvas: 'westeurope' is not a number"),
    ("", "--nvas: '' is not a number"),
])
def test_bad_sizes_are_refused_naming_the_region_and_the_range(value, message):
    with pytest.raises(LabError) as caught:
        plan.parse_sizes(value, "--nvas")
    assert str(caught.value).startswith(message), str(caught.value)


def test_sizes_are_spelled_and_described_back():
    assert (plan.spelled(MIXED), plan.described(MIXED)) == ("westeurope=1,northeurope=2", "westeurope 1 NVA, northeurope 2 NVAs")
    two = plan.parse_sizes(2)
    assert (plan.spelled(two), plan.described(two)) == ("2", "2 NVAs per region")
    assert plan.described(plan.parse_sizes(1)) == "1 NVA per region"
    assert plan.parse_sizes(plan.spelled(MIXED)) == MIXED


def test_a_region_of_one_nva_keeps_the_first_nvas_names_and_addresses():
    we, ne = plan.regions(MIXED)
    assert we.nvas == [("we-nva1", "10.10.2.4", "10.10.3.4", "198.18.0.11")]
    assert ne.nvas == [("ne-nva1", "10.20.2.4", "10.20.3.4", "198.18.0.21"), ("ne-nva2", "10.20.2.5", "10.20.3.5", "198.18.0.22")]
    assert [nic.name for nic in we.nics] == ["nic-we-nva1", "nic-we-testvm", "nic-we-app"]


def test_spec_and_seed_follow_each_regions_size():
    parsed = spec_mod.parse(labspec.spec(MIXED))  # the host machinery's own checks
    assert sorted(node.name for node in parsed.hosts) == ["ne-nva1", "ne-nva2", "we-nva1"]
    # westeurope's sync segment holds its one NVA (conntrackd is not configured there, the NIC is harmless)
    assert [node.name for node in parsed.hosts if any(iface.segment == "we-sync" for iface in node.interfaces)] == ["we-nva1"]
    for region in plan.regions(MIXED):
        fabric_node = parsed.node(f"{region.short}-hub")
        assert {iface.name for iface in fabric_node.interfaces} == {nic.port for nic in region.nics} | {"gw-er"}
    seed = labspec.seed(MIXED)
    nva_nics = sorted(nic["name"] for nic in seed["network_interfaces"] if "-nva" in nic["name"])
    assert nva_nics == ["nic-ne-nva1", "nic-ne-nva2", "nic-we-nva1"]


def test_a_mixed_size_is_recorded_and_every_reader_follows_it(lab_dir, monkeypatch):
    monkeypatch.setenv(plan.NVAS_ENV, "westeurope=1")
    assert plan.lab_nvas() == MIXED  # requested through the environment, nothing up
    monkeypatch.setenv(plan.NVAS_ENV, "3")
    plan.record_nvas("we=1,ne=2", lab_dir)
    with open(os.path.join(lab_dir, plan.SIZE_FILE), encoding="utf-8") as handle:
        assert json.load(handle) == {"nvas": MIXED}
    assert plan.recorded_nvas() == MIXED and plan.lab_nvas() == MIXED  # the running lab wins over the environment
    assert [len(region.nvas) for region in plan.REGIONS] == [1, 2]
    assert [len(region.nvas) for region in plan.regions()] == [1, 2]
    plan.record_nvas(4, lab_dir)
    with open(os.path.join(lab_dir, plan.SIZE_FILE), encoding="utf-8") as handle:
        assert json.load(handle) == {"nvas": 4}  # one size for both: recorded as before


def test_a_size_record_that_says_nothing_is_refused(lab_dir):
    with open(plan.size_file(lab_dir), "w", encoding="utf-8") as handle:
        json.dump({"nvas": {"westeurope": 12}}, handle)
    with pytest.raises(LabError, match="size.json: westeurope: 12 is out of range"):
        plan.recorded_nvas()
    with open(plan.size_file(lab_dir), "w", encoding="utf-8") as handle:
        json.dump({}, handle)
    with pytest.raises(LabError, match="size.json: no size recorded in it"):
        plan.recorded_nvas()


def test_up_refuses_a_mixed_size_while_the_lab_runs_another(lab_dir):
    plan.record_nvas(2, lab_dir)
    with pytest.raises(LabError, match=r"is up with 2 NVAs per region, not westeurope 1 NVA, northeurope 2 NVAs: take it down first"):
        Lab(nvas="westeurope=1,northeurope=2")._claim_size()  # pylint: disable=protected-access
    os.unlink(plan.size_file())
    assert Lab(nvas="westeurope=1,northeurope=2")._claim_size() == MIXED  # pylint: disable=protected-access
    with pytest.raises(LabError, match="or bring it up with --nvas westeurope=1,northeurope=2"):
        Lab(nvas=2)._claim_size()  # pylint: disable=protected-access


def test_inventories_follow_each_regions_size(lab_dir):
    plan.record_nvas(MIXED, lab_dir)
    # northeurope has the default 2 NVAs: its checked-in inventory; westeurope's is generated with its one NVA.
    assert inventory.inventory_path("northeurope") == os.path.join(REPO, "inventories", "lab", "northeurope")
    path = inventory.inventory_path("we")
    assert path == os.path.join(lab_dir, "inventories", "westeurope")
    with open(os.path.join(path, "hosts.yml"), encoding="utf-8") as handle:
        text = handle.read()
    assert "the region's 1 NVA." in text and "for a lab of westeurope 1 NVA, northeurope 2 NVAs" in text
    assert yaml.safe_load(text)["nva"]["hosts"] == {"we-nva1": {"ansible_host": "198.18.0.11", "anycast_nic": "nic-we-nva1",
                                                                "bird_local_address": "10.10.2.4",
                                                                "conntrack_sync_local_address": "10.10.3.4"}}


def run_cli(lab_dir, *argv):
    return subprocess.run([sys.executable, "-m", "anycast_lab", *argv], capture_output=True, text=True, check=False,
                          env=dict(os.environ, ANYCAST_LAB_DIR=lab_dir, PYTHONPATH=LAB_DIR))


def test_cli_writes_inventories_for_a_mixed_size_and_names_a_bad_one(lab_dir, tmp_path):
    out = str(tmp_path / "inv")
    done = run_cli(lab_dir, "inventory", "--nvas", "westeurope=1,northeurope=2", "--out", out)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"westeurope\t{out}/westeurope", f"northeurope\t{out}/northeurope"]
    for name, hosts in (("westeurope", ["we-nva1"]), ("northeurope", ["ne-nva1", "ne-nva2"])):
        with open(os.path.join(out, name, "hosts.yml"), encoding="utf-8") as handle:
            assert list(yaml.safe_load(handle)["nva"]["hosts"]) == hosts
    bad = run_cli(lab_dir, "up", "--nvas", "westeurope=9")
    assert bad.returncode == 2 and "argument --nvas: westeurope: 9 is out of range: 1 to 8" in bad.stderr, bad.stderr
    assert not os.path.exists(plan.size_file(lab_dir)), "a refused size must change nothing"
