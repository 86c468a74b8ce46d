"""The lab's model of Azure's convergence time: the ExpressRoute edge holds what it tells on-premises.

With a delay, a region's withdraw reaches on-premises that much later, and the requests on-premises keeps sending to
the region meanwhile fail: the cost the lab hides at its default of 0 s. Figures are printed: run with -s.
"""
import pytest

from conftest import wait_for
from anycast_lab.regions import convergence, plan
from anycast_lab.regions.traffic import requests

WE, NE = plan.REGIONS
DELAY = 2.0
RATE = 25.0


@pytest.fixture
def delayed(deployed):
    convergence.write_delay(deployed.base, DELAY)
    yield deployed
    convergence.write_delay(deployed.base, 0)


def test_a_withdraw_reaches_onpremises_after_the_convergence_delay(delayed):
    after, moved = delayed.application_failover(WE, seconds=8, rate=RATE)
    failed = sum(1 for record in after if not record["ok"])
    print(f"\nconvergence delay {DELAY:g} s: traffic on northeurope only after {moved if moved is not None else float('nan'):.2f} s, "
          f"{failed} failed requests of {len(after)}", flush=True)
    assert moved is not None, "traffic did not move to northeurope"
    # The checker withdraws within 0.2 s (failover_bench); on-premises hears of it DELAY later, not sooner.
    assert DELAY <= moved <= DELAY + 1.0, f"on-premises moved after {moved:.2f} s, not {DELAY:g}-{DELAY + 1:g} s"
    # About half of the requests (ECMP) went to westeurope while on-premises did not know: at least a quarter failed.
    assert failed >= RATE * DELAY / 4, f"only {failed} requests failed while on-premises still sent to westeurope"
    convergence.write_delay(delayed.base, 0)
    wait_for(lambda: requests(20)["failed"] == 0, 30, "westeurope did not serve again after its application came back")
