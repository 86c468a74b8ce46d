"""Fixtures of the lab's own integration tests: the ARM emulator (anycast_lab.fixtures, shared with tests/integration).

arm/    the emulator through the real SDK and over plain HTTP (arm_emulator, arm_emulator_factory)
hosts/  the host machinery: real nspawn hosts in network namespaces (root)
"""
from anycast_lab.fixtures import _arm_emulator_process, arm_emulator, arm_emulator_factory  # noqa: F401  pylint: disable=unused-import
