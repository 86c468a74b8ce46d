"""The subscription's locations and the api-versions the emulator serves, refused the way ARM refuses them."""
import pytest
import requests

from anycast_lab.arm import catalog


@pytest.fixture
def arm(arm_emulator):
    """A plain authenticated requests session: call(method, path, **kw) -> response."""
    session = requests.Session()
    session.headers["Authorization"] = "Bearer " + arm_emulator.credential().get_token("https://management.azure.com/.default").token

    def call(method, path, **kwargs):
        return session.request(method, arm_emulator.endpoint + path, verify=arm_emulator.ca_bundle, timeout=10, **kwargs)
    return call


def test_the_subscription_lists_its_locations(arm_emulator, arm):
    answer = arm("GET", f"/subscriptions/{arm_emulator.subscription_id}/locations?api-version=2022-12-01")
    assert answer.status_code == 200
    names = [location["name"] for location in answer.json()["value"]]
    assert "westeurope" in names and "northeurope" in names and len(names) == len(catalog.LOCATIONS)


def test_a_location_azure_does_not_have_is_refused_and_nothing_is_stored(arm_emulator, arm):
    path = arm_emulator.rid("routeTables/rt-mars") + "?api-version=2025-07-01"
    answer = arm("PUT", path, json={"location": "marsnorth", "properties": {}})
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "LocationNotAvailableForResourceType", answer.text
    assert "'marsnorth'" in answer.json()["error"]["message"]
    assert arm("GET", path).status_code == 404
    assert arm("PUT", path, json={"location": "West Europe", "properties": {}}).status_code == 201  # display names are names too


@pytest.mark.parametrize("version, status", [("2099-01-01", 400), ("2025-07-02", 400), ("2025-07-01", 200), ("2026-03-01", 200)])
def test_only_the_api_versions_it_serves_are_answered(arm_emulator, arm, version, status):
    answer = arm("GET", arm_emulator.rid("virtualNetworks/vnet-hub-weu") + "?api-version=" + version)
    assert answer.status_code == status, answer.text
    if status == 400:
        assert answer.json()["error"]["code"] == "NoRegisteredProviderFound" and version in answer.json()["error"]["message"]
