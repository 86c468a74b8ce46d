"""Bodies carry every key Azure's official examples show (Azure's REST API specs, Microsoft.Network, api-version
2025-07-01), minus a short, explicit list of features the emulator does not model.

The key paths each example's 200 body shows are in azure_rest_example_facts.json beside this file (`response_keys`,
derived from the examples by anycast_lab.arm.example_facts): `a.b` is key b of object a, `a[].b` key b of the first
item of list a."""
import pytest
import requests

from anycast_lab.arm.client import RESOURCE_GROUP as RG, route_server_topology
from anycast_lab.arm.example_facts import load

FACTS = load()["examples"]
ROUTE_LISTS = ("VirtualRouterPeerListAdvertisedRoute", "VirtualRouterPeerListLearnedRoute")
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
    "NetworkSecurityGroupGet": ("networkSecurityGroups/nsg1", set()),
}
RULE1 = {"name": "rule1", "properties": {"protocol": "*", "sourceAddressPrefix": "*", "destinationAddressPrefix": "*", "access": "Allow",
                                         "destinationPortRange": "80", "sourcePortRange": "*", "priority": 130, "direction": "Inbound",
                                         "description": "rule one"}}


def _keys(example):
    """The leaf key paths of the example's 200 body."""
    return FACTS[example]["response_keys"]


def _missing(paths, ours):
    """The key paths of the example absent from ours: the first absent key of each path (as a path), looked up through
    objects and the first item of a list of objects, where ours has them."""
    missing = set()
    for path in paths:
        node, where = ours, ""
        for step in path.split("."):
            key = step[:-2] if step.endswith("[]") else step
            if key not in node:
                missing.add(f"{where}{key}")
                break
            where += f"{step}."
            node = node[key]
            if step.endswith("[]"):
                node = node[0] if isinstance(node, list) and node else None
            if not isinstance(node, dict):
                break
    return missing


@pytest.fixture
def populated(arm_emulator):
    arm_emulator.seed(route_server_topology(peers=[{"name": "nva1", "peer_ip": "10.10.2.4", "peer_asn": 65001}]))
    arm_emulator.seed({"subscription_id": arm_emulator.subscription_id, "tenant_id": arm_emulator.tenant_id, "route_tables": [
        {"resource_group": RG, "name": "rt1", "routes": [{"name": "anycast", "address_prefix": "10.250.0.10/32", "next_hop_type": "VirtualNetworkGateway"}]}]})
    arm_emulator.seed({"subscription_id": arm_emulator.subscription_id, "tenant_id": arm_emulator.tenant_id, "resources": [
        {"id": arm_emulator.rid("networkSecurityGroups/nsg1"), "body": {"location": "westeurope", "properties": {"securityRules": [RULE1]}}}]})
    token = arm_emulator.credential().get_token("https://management.azure.com/.default").token

    def get(path):
        answer = requests.get(f"{arm_emulator.endpoint}{arm_emulator.rid(path)}?api-version=2025-07-01", headers={"Authorization": f"Bearer {token}"},
                              verify=arm_emulator.ca_bundle, timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()
    return get


def test_every_example_body_is_compared():
    """Every example whose body's keys the facts hold is checked here, as a case or a route list."""
    assert set(CASES) | set(ROUTE_LISTS) == {name for name, example in FACTS.items() if "response_keys" in example}


@pytest.mark.parametrize("example", sorted(CASES))
def test_body_has_the_keys_of_the_official_example(populated, example):
    path, unmodelled = CASES[example]
    ours = populated(path)
    missing = {key.rsplit(".", 1)[-1] for key in _missing(_keys(example), ours)}
    assert missing == unmodelled, f"{example}: missing {missing - unmodelled}, unexpectedly present {unmodelled - missing}"


def _route_lists(example):
    """{role: per-route keys} of a route list example (its body: {"RouteServiceRole_IN_0": [route, ...], ...})."""
    roles = {}
    for path in _keys(example):
        role, key = path.split("[].", 1)
        roles.setdefault(role, set()).add(key)
    return roles


# a value for each key of a route the examples show (the lab's hub instance, an NVA peer)
ROUTE = {"localAddress": "10.10.1.4", "network": "10.101.0.0/16", "nextHop": "10.10.2.4", "sourcePeer": "10.10.2.4", "origin": "EBgp",
         "asPath": "65001", "weight": 32768}


def test_learned_routes_body_has_the_keys_of_the_official_example(arm_emulator):
    learned, advertised = _route_lists("VirtualRouterPeerListLearnedRoute"), _route_lists("VirtualRouterPeerListAdvertisedRoute")
    arm_emulator.seed(route_server_topology(peers=[{"name": "nva1", "peer_ip": "10.10.2.4", "peer_asn": 65001}]))
    arm_emulator.set_routes("rs-weu", "nva1", learned={role: [{key: ROUTE[key] for key in keys}] for role, keys in learned.items()})
    net = arm_emulator.network_client()
    routes = net.virtual_hub_bgp_connections.begin_list_learned_routes(RG, "rs-weu", "nva1").result()
    assert set(routes) == set(learned)
    assert {role: set(items[0].as_dict()) for role, items in routes.items()} == learned
    # the default advertised routes (no lab) have the keys the advertised example shows
    answer = net.virtual_hub_bgp_connections.begin_list_advertised_routes(RG, "rs-weu", "nva1").result()
    assert {role: set(items[0].as_dict()) for role, items in answer.items()} == advertised
