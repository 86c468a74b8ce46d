"""Credentials and endpoints from the environment, as on a controller set up with AZURE_* variables."""
from anycast_lab.playbook_runner import HUB, RG


def test_service_principal_subscription_and_ca_from_the_environment(run_module, lab):
    result = run_module("route_server_info", dict(name=HUB, resource_group=RG, auth_source="env"), env=lab.env(),
                        drop=("subscription_id", "client_id", "secret", "tenant", "authority_host", "ca_bundle"))
    assert result["failed"] is False, result
    assert result["route_server"]["asn"] == 65515
    tokens = [r for r in lab.requests() if r["kind"] == "identity" and r["method"] == "POST"]
    assert tokens and all(r["status"] == 200 for r in tokens)


def test_auto_uses_the_explicit_service_principal(run_module, lab):
    result = run_module("route_server_info", dict(name=HUB, resource_group=RG, auth_source="auto"))
    assert result["failed"] is False and result["route_server"]["name"] == HUB, result


def test_credentials_without_a_secret_name_the_option(run_module, lab):
    result = run_module("route_server_info", dict(name=HUB, resource_group=RG, auth_source="credentials"), drop=("secret",))
    assert result["failed"] is True and result["msg"] == "secret: required when auth_source is credentials", result
    assert [r for r in lab.requests() if r["kind"] == "arm"] == []


def test_common_options_once_through_the_action_group(run_module):
    result = run_module("route_server_info", dict(name=HUB, resource_group=RG), group_defaults=True)
    assert result["failed"] is False and result["route_server"]["name"] == HUB, result


def test_auto_without_options_takes_the_service_principal_from_the_environment(run_module, lab):
    # No client_id/secret/tenant options: they fall back to AZURE_CLIENT_ID, AZURE_CLIENT_SECRET and AZURE_TENANT_ID.
    result = run_module("route_server_info", dict(name=HUB, resource_group=RG, auth_source="auto"), env=lab.env(),
                        drop=("client_id", "secret", "tenant"))
    assert result["failed"] is False and result["route_server"]["asn"] == 65515, result
