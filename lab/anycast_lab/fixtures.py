"""pytest fixtures of the ARM emulator (real HTTPS, real SDK), shared by the collection's integration tests
(tests/integration/conftest.py) and the emulator's own tests (lab/tests/integration/conftest.py), which import them.

`arm_emulator` is one emulator process per test session, reset and seeded with the
default topology (docs/dev/conventions.md, region westeurope) before every test:
    arm_emulator.endpoint / .authority / .ca_bundle / .subscription_id / .tenant_id / .client_id / .client_secret
    arm_emulator.requests(), .writes(), .route_reads(), .inject(**fault), .seed(dict), .reset(), .state()
    arm_emulator.network_client()   -> azure.mgmt.network.NetworkManagementClient against the emulator
    arm_emulator.env()              -> AZURE_* / REQUESTS_CA_BUNDLE for subprocesses (ansible-playbook, modules)
`arm_emulator_factory(**options)` starts a private emulator (e.g. to restart it or give it hooks).
"""
import pytest

from .arm.client import EmulatorProcess


@pytest.fixture(scope="session")
def _arm_emulator_process(tmp_path_factory):
    emulator = EmulatorProcess(str(tmp_path_factory.mktemp("arm-emulator"))).start()
    yield emulator
    emulator.stop()


@pytest.fixture
def arm_emulator(_arm_emulator_process):  # pylint: disable=redefined-outer-name
    """The session's emulator, emptied and seeded with the default topology for this test."""
    if _arm_emulator_process.proc is None or _arm_emulator_process.proc.poll() is not None:
        _arm_emulator_process.start()  # an earlier test stopped or killed it: one test's mishap stays its own
    _arm_emulator_process.reset()
    yield _arm_emulator_process
    _arm_emulator_process.clear_faults()


@pytest.fixture
def arm_emulator_factory(tmp_path):
    """Start private emulators: factory(op_seconds=..., routing_delay=..., extra_args=[...], seed=True)."""
    started = []

    def factory(seed=True, **options):
        emulator = EmulatorProcess(str(tmp_path / f"arm-{len(started)}"), **options).start()
        started.append(emulator)
        if seed:
            emulator.reset()
        return emulator

    yield factory
    for emulator in started:
        emulator.stop()
