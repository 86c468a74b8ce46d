"""Bodies carry every key Azure's official examples show (2025-07-01, ../shared/azure-rest-examples), minus a
short, explicit list of features the emulator does not model."""
import json
import os

import pytest
import requests

from anycast_lab.arm.client import RESOURCE_GROUP as RG, route_server_topology
from anycast_lab.paths import REPO

EXAMPLES = os.path.join(os.path.dirname(REPO), "shared", "azure-rest-examples", "2025-07-01")
# example file -> (resource path under the resource group, keys of the example the emulator leaves out)
CASES = {
    "VirtualHubGet": ("virtualHubs/rs-weu", {"virtualWan", "addressPrefix"}),
    "VirtualHubBgpConnectionGet": ("virtualHubs/rs-weu/bgpConnections/nva1", {"hubVirtualNetworkConnection"}),
    "VirtualHubIpConfigurationGet": ("virtualHubs/rs-weu/ipConfigurations/ipconfig1", set()),
    "RouteTableGet": ("routeTables/rt1", set()),
    "RouteTableRouteGet": ("routeTables/rt1/routes/anycast", set()),
    "VirtualNetworkGet": ("virtualNetworks/vnet-hub-weu", {"defaultPublicNatGateway"}),
    "SubnetGet": ("virtualNetworks/vnet-hub-weu/subnets/snet-nva", set()),
    # (nic-nva1-weu has no public IP, so its ipConfiguration has no publicIPAddress either)
    "NetworkInterfaceGet": ("networkInterfaces/nic-nva1-weu", {"dscpConfiguration", "networkSecurityGroup", "virtualMachine", "publicIPAddress"}),
}


def _example(name):
    path = os.path.join(EXAMPLES, f"{name}.json")
    if not os.path.exists(path):
        pytest.skip(f"official examples not found at {EXAMPLES}")
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)["responses"]["200"]["body"]


def _missing(example, ours, where=""):
    """Keys of the example (recursively through objects and the first list item) absent from ours."""
    missing = set()
    for key, value in example.items():
        if key not in ours:
            missing.add(f"{where}{key}")
        elif isinstance(value, dict) and isinstance(ours[key], dict):
            missing |= _missing(value, ours[key], f"{where}{key}.")
        elif isinstance(value, list) and value and isinstance(value[0], dict) and isinstance(ours[key], list) and ours[key]:
            missing |= _missing(value[0], ours[key][0], f"{where}{key}[].")
    return missing


@pytest.fixture
def populated(arm_emulator):
    arm_emulator.seed(route_server_topology(peers=[{"name": "nva1", "peer_ip": "10.10.2.4", "peer_asn": 65001}]))
    arm_emulator.seed({"subscription_id": arm_emulator.subscription_id, "tenant_id": arm_emulator.tenant_id, "route_tables": [
        {"resource_group": RG, "name": "rt1", "routes": [{"name": "anycast", "address_prefix": "10.250.0.10/32", "next_hop_type": "VirtualNetworkGateway"}]}]})
    token = arm_emulator.credential().get_token("https://management.azure.com/.default").token

    def get(path):
        answer = requests.get(f"{arm_emulator.endpoint}{arm_emulator.rid(path)}?api-version=2025-07-01", headers={"Authorization": f"Bearer {token}"},
                              verify=arm_emulator.ca_bundle, timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()
    return get


@pytest.mark.parametrize("example", sorted(CASES))
def test_body_has_the_keys_of_the_official_example(populated, example):
    path, unmodelled = CASES[example]
    ours = populated(path)
    missing = {key.rsplit(".", 1)[-1] for key in _missing(_example(example), ours)}
    assert missing == unmodelled, f"{example}: missing {missing - unmodelled}, unexpectedly present {unmodelled - missing}"


def test_learned_routes_body_has_the_keys_of_the_official_example(arm_emulator):
    example = _example("VirtualRouterPeerListLearnedRoute")
    arm_emulator.seed(route_server_topology(peers=[{"name": "nva1", "peer_ip": "10.10.2.4", "peer_asn": 65001}]))
    arm_emulator.set_routes("rs-weu", "nva1", learned=example)
    net = arm_emulator.network_client()
    routes = net.virtual_hub_bgp_connections.begin_list_learned_routes(RG, "rs-weu", "nva1").result()
    assert set(routes) == set(example)
    # the default advertised routes (no lab) have the same per-route keys
    advertised = net.virtual_hub_bgp_connections.begin_list_advertised_routes(RG, "rs-weu", "nva1").result()
    assert set(advertised["RouteServiceRole_IN_0"][0].as_dict()) == set(example["RouteServiceRole_IN_0"][0])
