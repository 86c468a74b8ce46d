"""Entra ID emulation: azure-identity credentials work unchanged; ARM refuses requests without a valid token."""
import base64
import json
import time

import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientSecretCredential, EnvironmentCredential

ARM_SCOPE = "https://management.azure.com/.default"


def test_client_secret_credential_gets_a_token(arm_emulator):
    token = arm_emulator.credential().get_token(ARM_SCOPE)
    assert token.token.count(".") == 2 and token.expires_on > 0
    claims = json.loads(base64.urlsafe_b64decode(token.token.split(".")[1] + "=="))
    assert claims["tid"] == arm_emulator.tenant_id and claims["appid"] == arm_emulator.client_id
    # MSAL's conversation, in order: tenant discovery, then the token endpoint; nothing else (no instance discovery).
    calls = [(r["method"], r["path"]) for r in arm_emulator.requests() if r["kind"] == "identity"]
    assert calls == [("GET", f"/{arm_emulator.tenant_id}/v2.0/.well-known/openid-configuration"),
                     ("POST", f"/{arm_emulator.tenant_id}/oauth2/v2.0/token")]


def test_environment_credential_with_authority_host(arm_emulator, monkeypatch):
    for key, value in arm_emulator.env().items():
        monkeypatch.setenv(key, value)
    # disable_instance_discovery: otherwise MSAL asks login.microsoftonline.com whether 127.0.0.1 is a known authority.
    credential = EnvironmentCredential(disable_instance_discovery=True)
    assert credential.get_token(ARM_SCOPE).token
    client = arm_emulator.network_client(credential=credential)
    assert [v.name for v in client.virtual_networks.list(arm_emulator.resource_group)] == ["vnet-hub-weu", "vnet-spoke-weu"]


def test_msal_instance_discovery_document_points_back_at_the_emulator(arm_emulator, monkeypatch):
    import msal  # pylint: disable=import-outside-toplevel
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", arm_emulator.ca_bundle)  # requests lets this override MSAL's verify=
    app = msal.ConfidentialClientApplication(arm_emulator.client_id, client_credential=arm_emulator.client_secret,
                                             authority=f"{arm_emulator.authority}/{arm_emulator.tenant_id}",
                                             instance_discovery=f"{arm_emulator.endpoint}/common/discovery/instance")
    result = app.acquire_token_for_client([ARM_SCOPE])
    assert "access_token" in result, result
    assert any(r["path"] == "/common/discovery/instance" for r in arm_emulator.requests())


def test_wrong_secret_gets_an_aadsts_error(arm_emulator):
    with pytest.raises(ClientAuthenticationError) as caught:
        arm_emulator.credential(client_secret="wrong").get_token(ARM_SCOPE)
    assert "AADSTS7000215: Invalid client secret provided" in str(caught.value)
    token_calls = [r for r in arm_emulator.requests() if r["path"].endswith("/oauth2/v2.0/token")]
    assert [r["status"] for r in token_calls] == [401]


def test_unknown_client_and_unknown_tenant_are_refused(arm_emulator):
    with pytest.raises(ClientAuthenticationError, match="AADSTS700016"):
        arm_emulator.credential(client_id="11111111-2222-3333-4444-555555555555").get_token(ARM_SCOPE)
    # MSAL reports the failed tenant discovery (HTTP 400 from the emulator, as from Entra ID) in its own words.
    with pytest.raises(ClientAuthenticationError, match="Unable to get authority configuration"):
        ClientSecretCredential("99999999-0000-0000-0000-000000000000", arm_emulator.client_id, arm_emulator.client_secret,
                               authority=arm_emulator.authority, disable_instance_discovery=True,
                               connection_verify=arm_emulator.ca_bundle).get_token(ARM_SCOPE)
    discovery = [r for r in arm_emulator.requests() if r["path"].startswith("/99999999-")]
    assert [r["status"] for r in discovery] == [400]


def _hub_vnet_url(emu):
    return f"{emu.endpoint}{emu.rid('virtualNetworks/vnet-hub-weu')}?api-version=2025-07-01"


def test_arm_without_or_with_a_forged_token_is_401(arm_emulator):
    url = _hub_vnet_url(arm_emulator)
    for headers in ({}, {"Authorization": "Bearer not.a.token"}, {"Authorization": "Basic abc"}):
        answer = requests.get(url, headers=headers, verify=arm_emulator.ca_bundle, timeout=10)
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "InvalidAuthenticationToken"
        assert answer.headers["WWW-Authenticate"].startswith("Bearer authorization_uri=")
    token = arm_emulator.credential().get_token(ARM_SCOPE).token
    head, payload, mac = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["appid"] = "someone-else"
    forged = f"{head}.{base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b'=').decode()}.{mac}"
    answer = requests.get(url, headers={"Authorization": f"Bearer {forged}"}, verify=arm_emulator.ca_bundle, timeout=10)
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert arm_emulator.writes() == 0


def test_a_second_independent_client_plain_requests(arm_emulator):
    """Another ARM client (no SDK): plain HTTP calls, polling Azure-AsyncOperation itself."""
    token = arm_emulator.credential().get_token(ARM_SCOPE).token
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    url = f"{arm_emulator.endpoint}{arm_emulator.rid('routeTables/rt-plain')}?api-version=2025-07-01"
    body = {"location": "westeurope", "properties": {"routes": [
        {"name": "anycast", "properties": {"addressPrefix": "10.250.0.10/32", "nextHopType": "VirtualAppliance", "nextHopIpAddress": "10.10.2.4"}}]}}
    answer = session.put(url, json=body, verify=arm_emulator.ca_bundle, timeout=10)
    assert answer.status_code == 201
    assert answer.json()["properties"]["provisioningState"] == "Updating"
    status_url = answer.headers["Azure-AsyncOperation"]
    for _poll in range(100):
        status = session.get(status_url, verify=arm_emulator.ca_bundle, timeout=10).json()["status"]
        if status != "InProgress":
            break
        time.sleep(0.05)
    assert status == "Succeeded"
    table = session.get(url, verify=arm_emulator.ca_bundle, timeout=10).json()
    assert table["properties"]["provisioningState"] == "Succeeded"
    assert table["properties"]["routes"][0]["properties"]["nextHopIpAddress"] == "10.10.2.4"
    assert table["type"] == "Microsoft.Network/routeTables" and table["etag"].startswith('W/"')
    # and the SDK sees the same resource
    assert arm_emulator.network_client().route_tables.get(arm_emulator.resource_group, "rt-plain").routes[0].name == "anycast"


@pytest.mark.parametrize("change, code", [
    ({"exp": 1}, "ExpiredAuthenticationToken"),
    ({"aud": "https://graph.microsoft.com"}, "InvalidAuthenticationTokenAudience"),
    ({"tid": "99999999-0000-0000-0000-000000000000"}, "InvalidAuthenticationTokenTenant"),
])
def test_tokens_signed_right_but_wrong_claims_are_401(arm_emulator, change, code):
    from anycast_lab.arm import identity  # pylint: disable=import-outside-toplevel
    with open(arm_emulator.state_file, encoding="utf-8") as handle:
        key = json.load(handle)["signing_key"]
    claims = {"aud": "https://management.azure.com", "tid": arm_emulator.tenant_id, "appid": arm_emulator.client_id, "exp": time.time() + 600}
    claims.update(change)
    answer = requests.get(_hub_vnet_url(arm_emulator), headers={"Authorization": "Bearer " + identity.sign(key, claims)},
                          verify=arm_emulator.ca_bundle, timeout=10)
    assert answer.status_code == 401 and answer.json()["error"]["code"] == code
    claims = dict(claims, exp=time.time() + 600, aud="https://management.azure.com", tid=arm_emulator.tenant_id)
    answer = requests.get(_hub_vnet_url(arm_emulator), headers={"Authorization": "Bearer " + identity.sign(key, claims)},
                          verify=arm_emulator.ca_bundle, timeout=10)
    assert answer.status_code == 200
