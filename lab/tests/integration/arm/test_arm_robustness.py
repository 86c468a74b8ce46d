"""Malformed bodies get a 400 with an error code, never a 500, and change nothing."""
import pytest
import requests

from anycast_lab.arm.client import route_server_topology

LOC = "westeurope"
GENERIC = [[], "text", 5, None, {"properties": []}, {"location": LOC, "properties": "x"}]
# Per resource: bodies with the right shape but wrong types or values in the fields the emulator reads.
SPECIFIC = {
    "virtualNetworks/vnet-x": [
        {"location": LOC, "properties": {"addressSpace": {"addressPrefixes": "10.0.0.0/8"}}},
        {"location": LOC, "properties": {"addressSpace": {"addressPrefixes": ["10.30.0.0/16"]}, "subnets": [None]}},
        {"location": LOC, "properties": {"addressSpace": {"addressPrefixes": ["10.30.0.0/16"]}, "subnets": {"a": 1}}},
        {"location": LOC, "properties": {"addressSpace": {"addressPrefixes": ["10.30.0.0/16"]},
                                         "subnets": [{"name": "a", "properties": {"addressPrefix": 5}}]}},
        {"location": 5, "properties": {"addressSpace": {"addressPrefixes": ["10.30.0.0/16"]}}}],
    "virtualNetworks/vnet-hub-weu/subnets/snet-x": [
        {"properties": {"addressPrefix": 5}}, {"properties": {"addressPrefixes": "10.10.9.0/24"}},
        {"properties": {"addressPrefix": "10.10.9.0/24", "routeTable": "rt-x"}},
        {"properties": {"addressPrefix": "10.10.9.0/24", "routeTable": {"id": 5}}}],
    "networkInterfaces/nic-x": [
        {"location": LOC, "properties": {"ipConfigurations": "all"}},
        {"location": LOC, "properties": {"ipConfigurations": [{"name": "c", "properties": 7}]}},
        {"location": LOC, "properties": {"ipConfigurations": [{"name": "c", "properties": {"subnet": "id"}}]}},
        {"location": LOC, "properties": {"enableIPForwarding": "true", "ipConfigurations": []}},
        {"location": LOC, "properties": {"ipConfigurations": [{"name": "c", "properties": {
            "subnet": {"id": "/subscriptions/x/resourceGroups/y/providers/Microsoft.Network/virtualNetworks/v/subnets/s"},
            "privateIPAddress": ["10.10.2.9"]}}]}}],
    "virtualHubs/rs-x": [
        {"location": LOC, "properties": {"sku": {"name": "Standard"}}},
        {"location": LOC, "properties": {"hubRoutingPreference": 3}},
        {"location": LOC, "properties": {"allowBranchToBranchTraffic": "yes"}},
        {"location": LOC, "properties": {"virtualRouterAsn": "65515"}},
        {"location": LOC, "properties": {"addressPrefix": 5}}],
    "virtualHubs/rs-weu/ipConfigurations/ipconfig2": [
        {"properties": {"subnet": "id"}}, {"properties": {}}, {"properties": {"subnet": {"id": None}}}],
    "virtualHubs/rs-weu/bgpConnections/peer-x": [
        {"properties": {"peerIp": ["10.10.2.4"], "peerAsn": 65001}}, {"properties": {"peerIp": "10.10.2.4", "peerAsn": None}},
        {"properties": {"peerIp": "10.10.2.4", "peerAsn": True}}, {"properties": {"peerIp": "10.10.2.4", "peerAsn": 2 ** 33}},
        {"properties": {"peerIp": "fe80::1", "peerAsn": 65001}}],
    "routeTables/rt-x": [
        {"location": LOC, "properties": {"routes": "all"}},
        {"location": LOC, "properties": {"routes": [{"name": "r", "properties": {"addressPrefix": None, "nextHopType": 1}}]}},
        {"location": LOC, "properties": {"routes": [{"properties": {"addressPrefix": "10.0.0.0/8", "nextHopType": "None"}}]}},
        {"location": LOC, "properties": {"disableBgpRoutePropagation": 1}}],
    "routeTables/rt-x/routes/r-x": [
        {"properties": {"addressPrefix": "10.0.0.0/8"}}, {"properties": {"addressPrefix": ["10.0.0.0/8"], "nextHopType": "None"}},
        {"properties": {"addressPrefix": "10.0.0.0/8", "nextHopType": "VirtualAppliance", "nextHopIpAddress": 5}}],
}


@pytest.fixture
def put(arm_emulator):
    arm_emulator.seed(route_server_topology())
    arm_emulator.seed({"subscription_id": arm_emulator.subscription_id, "tenant_id": arm_emulator.tenant_id,
                       "route_tables": [{"resource_group": arm_emulator.resource_group, "name": "rt-x"}]})
    token = arm_emulator.credential().get_token("https://management.azure.com/.default").token

    def call(path, body):
        return requests.put(f"{arm_emulator.endpoint}{arm_emulator.rid(path)}?api-version=2025-07-01", json=body,
                            headers={"Authorization": f"Bearer {token}"}, verify=arm_emulator.ca_bundle, timeout=10)
    return call


def test_no_malformed_body_crashes_or_changes_anything(arm_emulator, put):
    before = arm_emulator.state()["resources"]
    wrong = {}
    for path, bodies in SPECIFIC.items():
        for body in GENERIC + bodies:
            answer = put(path, body)
            code = answer.json().get("error", {}).get("code") if answer.content else None
            if answer.status_code != 400 or not code or code == "InternalServerError":
                wrong[f"{path} {body!r}"] = (answer.status_code, code)
    assert not wrong, "\n".join(f"{key} -> {value}" for key, value in wrong.items())
    assert arm_emulator.state()["resources"] == before
    assert arm_emulator.writes() == sum(len(GENERIC) + len(bodies) for bodies in SPECIFIC.values())
