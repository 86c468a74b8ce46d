"""For clients configured by cloud rather than by endpoint: the cloud metadata endpoint, and the CONNECT proxy
that sends Azure's public hostnames to the emulator (how the control-plane benchmark runs azure.azcollection)."""
import os
import subprocess
import sys

import pytest
import requests
from azure.identity import ClientSecretCredential
from azure.mgmt.network import NetworkManagementClient

from anycast_lab.arm.client import LAB_DIR
from anycast_lab.arm.proxy import DEFAULT_HOSTS, ConnectProxy

SERVER_NAMES = [arg for host in DEFAULT_HOSTS for arg in ("--server-name", host)]


def test_metadata_endpoint_is_enough_to_configure_a_client(arm_emulator):
    answer = requests.get(f"{arm_emulator.endpoint}/metadata/endpoints", params={"api-version": "2022-09-01"}, verify=arm_emulator.ca_bundle, timeout=30)
    assert answer.status_code == 200
    [cloud] = answer.json()
    # Only what the document says: login endpoint, token audience, ARM endpoint.
    credential = ClientSecretCredential(arm_emulator.tenant_id, arm_emulator.client_id, arm_emulator.client_secret,
                                        authority=cloud["authentication"]["loginEndpoint"], disable_instance_discovery=True,
                                        connection_verify=arm_emulator.ca_bundle)
    client = NetworkManagementClient(credential, arm_emulator.subscription_id, base_url=cloud["resourceManager"],
                                     credential_scopes=[cloud["authentication"]["audiences"][0] + ".default"], connection_verify=arm_emulator.ca_bundle)
    assert [vnet.name for vnet in client.virtual_networks.list(arm_emulator.resource_group)] == ["vnet-hub-weu", "vnet-spoke-weu"]
    assert cloud["name"] == "AnycastLab" and cloud["resourceManager"] == arm_emulator.endpoint + "/" and cloud["suffixes"] == {}
    logged = [(entry["kind"], entry["category"], entry["status"]) for entry in arm_emulator.requests() if entry["path"] == "/metadata/endpoints"]
    assert logged == [("metadata", "metadata", 200)]


def test_metadata_endpoint_old_shape_and_missing_api_version(arm_emulator):
    url = f"{arm_emulator.endpoint}/metadata/endpoints"
    old = requests.get(url, params={"api-version": "2015-01-01"}, verify=arm_emulator.ca_bundle, timeout=30).json()
    assert old["authentication"] == {"loginEndpoint": arm_emulator.endpoint + "/", "audiences": [arm_emulator.endpoint + "/"]}
    assert {"galleryEndpoint", "graphEndpoint", "portalEndpoint"} <= set(old)
    missing = requests.get(url, verify=arm_emulator.ca_bundle, timeout=30)
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "MissingApiVersionParameter"
    assert requests.post(url, params={"api-version": "2022-09-01"}, verify=arm_emulator.ca_bundle, timeout=30).status_code == 405
    # Not ARM: metadata requests are never counted as ARM reads or writes.
    assert arm_emulator.arm_requests() == []


@pytest.fixture
def proxied(arm_emulator_factory, monkeypatch):
    """An emulator whose certificate names Azure's public hosts, a proxy in front of it, and the environment that uses both."""
    emulator = arm_emulator_factory(extra_args=SERVER_NAMES)
    proxy = ConnectProxy(emulator.endpoint).start()
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", emulator.ca_bundle)
    yield emulator, proxy
    proxy.stop()


def test_sdk_with_public_cloud_defaults_reaches_the_emulator_through_the_proxy(proxied):
    emulator, proxy = proxied
    # No authority, no base_url: login.microsoftonline.com and management.azure.com, as any unconfigurable client.
    client = NetworkManagementClient(ClientSecretCredential(emulator.tenant_id, emulator.client_id, emulator.client_secret), emulator.subscription_id)
    assert [vnet.name for vnet in client.virtual_networks.list(emulator.resource_group)] == ["vnet-hub-weu", "vnet-spoke-weu"]
    assert {"login.microsoftonline.com:443", "management.azure.com:443"} <= set(proxy.tunnels)
    assert [entry["kind"] for entry in emulator.requests()][-1] == "arm"


def test_proxy_refuses_hosts_outside_the_lab(proxied):
    with pytest.raises(requests.exceptions.ProxyError, match="403"):
        requests.get("https://example.com/", timeout=10)
    assert proxied[1].tunnels == []


def test_proxy_command_line(arm_emulator):
    env = dict(os.environ, PYTHONPATH=LAB_DIR)
    with subprocess.Popen([sys.executable, "-m", "anycast_lab.arm", "proxy", "--emulator", arm_emulator.endpoint, "--host", "lab.example"],
                          env=env, stdout=subprocess.PIPE, text=True) as proc:
        try:
            ready = proc.stdout.readline().split()
            assert ready[0] == "ready" and ready[1].startswith("http://127.0.0.1:")
            proxies = {"https": ready[1]}
            answer = requests.get(f"{arm_emulator.endpoint}/_emulator/health", proxies=proxies, verify=arm_emulator.ca_bundle, timeout=10)
            assert answer.json()["status"] == "ok"  # the emulator's own host:port is always tunnelled
            with pytest.raises(requests.exceptions.ProxyError, match="403"):
                requests.get("https://management.azure.com/", proxies=proxies, timeout=10)  # --host replaces the defaults
        finally:
            proc.terminate()
            proc.wait(10)
