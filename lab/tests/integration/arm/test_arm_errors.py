"""ARM's error answers: 404 flavours, api-version, bad JSON, resource groups."""
import time

import pytest
import requests
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from anycast_lab.arm.client import RESOURCE_GROUP as RG


@pytest.fixture
def arm(arm_emulator):
    """A plain authenticated requests session: call(method, path, **kw) -> response."""
    session = requests.Session()
    session.headers["Authorization"] = "Bearer " + arm_emulator.credential().get_token("https://management.azure.com/.default").token

    def call(method, path, **kwargs):
        url = path if path.startswith("https://") else arm_emulator.endpoint + path
        return session.request(method, url, verify=arm_emulator.ca_bundle, timeout=10, **kwargs)
    return call


def test_404_codes(arm_emulator, net):
    with pytest.raises(ResourceNotFoundError) as caught:
        net.virtual_hubs.get(RG, "nope")
    assert caught.value.error.code == "ResourceNotFound" and "Microsoft.Network/virtualHubs/nope" in caught.value.error.message
    with pytest.raises(ResourceNotFoundError) as caught:
        net.virtual_hubs.get("rg-missing", "nope")
    assert caught.value.error.code == "ResourceGroupNotFound" and "rg-missing" in caught.value.error.message
    with pytest.raises(ResourceNotFoundError) as caught:
        net.virtual_hub_bgp_connection.get(RG, "nope", "peer")
    assert caught.value.error.code == "ParentResourceNotFound"
    with pytest.raises(ResourceNotFoundError) as caught:
        net.subnets.get(RG, "vnet-hub-weu", "nope")
    assert caught.value.error.code == "ResourceNotFound"
    other = arm_emulator.network_client()
    other._config.subscription_id = "11111111-1111-1111-1111-111111111111"  # pylint: disable=protected-access
    with pytest.raises(ResourceNotFoundError) as caught:
        other.virtual_hubs.get(RG, "nope")
    assert caught.value.error.code == "SubscriptionNotFound"
    with pytest.raises(ResourceNotFoundError):
        net.route_tables.begin_create_or_update("rg-missing", "rt", {"location": "westeurope"})
    assert not [rid for rid in arm_emulator.state()["resources"] if "rg-missing" in rid]


def test_api_version_is_required(arm_emulator, arm):
    path = arm_emulator.rid("virtualNetworks/vnet-hub-weu")
    answer = arm("GET", path)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "MissingApiVersionParameter"
    answer = arm("GET", path + "?api-version=yesterday")
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "InvalidApiVersionParameter"
    answer = arm("GET", path + "?api-version=2025-07-01")
    assert answer.status_code == 200 and answer.json()["name"] == "vnet-hub-weu"


def test_lists_have_value_and_no_next_link(arm_emulator, arm):
    answer = arm("GET", arm_emulator.rid("virtualNetworks") + "?api-version=2025-07-01").json()
    assert set(answer) == {"value"} and len(answer["value"]) == 2
    answer = arm("GET", f"/subscriptions/{arm_emulator.subscription_id}/providers/Microsoft.Network/networkInterfaces?api-version=2025-07-01").json()
    assert sorted(n["name"] for n in answer["value"]) == ["nic-nva1-weu", "nic-nva2-weu"]


def test_bad_json_and_missing_location(arm_emulator, arm):
    path = arm_emulator.rid("routeTables/rt") + "?api-version=2025-07-01"
    answer = arm("PUT", path, data="{not json", headers={"Content-Type": "application/json"})
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "InvalidRequestContent"
    answer = arm("PUT", path, json={"properties": {}})
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "LocationRequired"
    answer = arm("PUT", path, json={"location": "westeurope", "properties": {"disableBgpRoutePropagation": "yes"}})
    assert answer.status_code == 400 and "properties.disableBgpRoutePropagation" in answer.json()["error"]["message"]
    assert arm_emulator.state()["resources"].get(arm_emulator.rid("routeTables/rt")) is None


def test_unknown_resource_type(arm_emulator, arm):
    answer = arm("GET", arm_emulator.rid("loadBalancers/lb1") + "?api-version=2025-07-01")
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "InvalidResourceType"


def test_resource_groups(arm_emulator, arm):
    path = f"/subscriptions/{arm_emulator.subscription_id}/resourcegroups/rg-new?api-version=2021-04-01"
    assert arm("GET", path).json()["error"]["code"] == "ResourceGroupNotFound"
    assert arm("HEAD", path).status_code == 404
    answer = arm("PUT", path, json={"location": "northeurope"})
    assert answer.status_code == 201 and answer.json()["id"] == f"/subscriptions/{arm_emulator.subscription_id}/resourceGroups/rg-new"
    assert arm("PUT", path, json={"location": "northeurope"}).status_code == 200
    assert arm("HEAD", path).status_code == 204
    names = [g["name"] for g in arm("GET", f"/subscriptions/{arm_emulator.subscription_id}/resourcegroups?api-version=2021-04-01").json()["value"]]
    assert names == [RG, "rg-new"]
    net = arm_emulator.network_client()
    net.route_tables.begin_create_or_update("rg-new", "rt", {"location": "northeurope"}).result()
    answer = arm("DELETE", path)
    assert answer.status_code == 202 and "Location" in answer.headers
    for _poll in range(200):
        if arm("GET", answer.headers["Location"]).status_code != 202:
            break
        time.sleep(0.05)
    assert arm("GET", path).status_code == 404
    with pytest.raises(HttpResponseError):
        net.route_tables.get("rg-new", "rt")


def test_chunked_request_body(arm_emulator, arm):
    body = b'{"location": "westeurope", "properties": {"disableBgpRoutePropagation": true}}'
    answer = arm("PUT", arm_emulator.rid("routeTables/rt-chunked") + "?api-version=2025-07-01", data=iter([body[:20], body[20:]]),
                 headers={"Content-Type": "application/json"})
    assert answer.status_code == 201, answer.text
    assert answer.json()["properties"]["disableBgpRoutePropagation"] is True


def test_if_match_and_if_none_match(arm_emulator, arm):
    path = arm_emulator.rid("routeTables/rt-etag") + "?api-version=2025-07-01"
    body = {"location": "westeurope"}
    assert arm("PUT", path, json=body, headers={"If-None-Match": "*"}).status_code == 201
    answer = arm("PUT", path, json=body, headers={"If-None-Match": "*"})
    assert answer.status_code == 412 and answer.json()["error"]["code"] == "PreconditionFailed"
    for _poll in range(200):
        table = arm("GET", path).json()
        if table["properties"]["provisioningState"] != "Updating":
            break
        time.sleep(0.05)
    assert arm("PUT", path, json=body, headers={"If-Match": 'W/"stale"'}).status_code == 412
    assert arm("PUT", path, json=body, headers={"If-Match": table["etag"]}).status_code == 200
