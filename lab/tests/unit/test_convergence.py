"""The convergence delay's file and redirect (anycast_lab.regions.convergence); the relay itself runs in
tests/e2e/test_convergence.py, between the lab's real edge and on-premises BIRD."""
import pytest

from anycast_lab.hosts.util import LabError
from anycast_lab.regions import convergence, plan


def test_the_delay_written_is_the_delay_read(tmp_path):
    convergence.write_delay(str(tmp_path), 2.5)
    assert convergence.read_delay(convergence.delay_file(str(tmp_path))) == 2.5


def test_no_file_or_a_bad_one_means_no_delay(tmp_path):
    path = convergence.delay_file(str(tmp_path))
    assert convergence.read_delay(path) == 0.0
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("soon\n")
    assert convergence.read_delay(path) == 0.0


@pytest.mark.parametrize("seconds", [-1, convergence.MAX_DELAY + 1])
def test_a_delay_out_of_range_is_refused_before_anything_is_written(tmp_path, seconds):
    with pytest.raises(LabError, match="outside 0-120"):
        convergence.write_delay(str(tmp_path), seconds)
    assert not (tmp_path / "convergence_delay").exists()


def test_the_redirect_takes_the_edge_sessions_to_every_region_but_not_the_relays_own():
    rules = convergence.nft_ruleset()
    for region in plan.REGIONS:
        assert region.onprem_addr("onprem") in rules
    assert f"meta mark != {convergence.RELAY_MARK:#x} tcp dport 179" in rules
    assert f"redirect to :{convergence.RELAY_PORT}" in rules
