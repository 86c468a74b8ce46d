"""Helpers for the emulator's own tests: an SDK client and a ready Route Server."""
import pytest

from anycast_lab.arm.client import ROUTE_SERVER, route_server_topology


@pytest.fixture
def net(arm_emulator):
    """azure-mgmt-network's NetworkManagementClient on the emulator; fast retries so fault tests stay short."""
    return arm_emulator.network_client(retry_total=3, retry_backoff_factor=0.05, polling_interval=1)


@pytest.fixture
def route_server(arm_emulator):
    """The name of a provisioned Route Server (rs-weu, instances 10.10.1.4/.5) on the hub VNet."""
    arm_emulator.seed(route_server_topology())
    return ROUTE_SERVER
