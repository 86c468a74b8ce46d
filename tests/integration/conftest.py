"""Fixtures shared by the integration tests: the ARM emulator (real HTTPS, real SDK).

`arm_emulator` is one emulator process per test session, reset and seeded with the
default topology (docs/dev/conventions.md, region westeurope) before every test:
    arm_emulator.endpoint / .authority / .ca_bundle / .subscription_id / .tenant_id / .client_id / .client_secret
    arm_emulator.requests(), .writes(), .route_reads(), .inject(**fault), .seed(dict), .reset(), .state()
    arm_emulator.network_client()   -> azure.mgmt.network.NetworkManagementClient against the emulator
    arm_emulator.env()              -> AZURE_* / REQUESTS_CA_BUNDLE for subprocesses (ansible-playbook, modules)
`arm_emulator_factory(**options)` starts a private emulator (e.g. to restart it or give it hooks).
"""
# The fixtures live in the lab package, shared with the lab's own tests (lab/tests/integration).
from anycast_lab.fixtures import _arm_emulator_process, arm_emulator, arm_emulator_factory  # noqa: F401  pylint: disable=unused-import
