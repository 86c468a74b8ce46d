"""Compare-then-act helpers and the error type's message format."""
from ansible_collections.anycast.nva.plugins.module_utils import compare
from ansible_collections.anycast.nva.plugins.module_utils.arm import parse_id
from ansible_collections.anycast.nva.plugins.module_utils.errors import AnycastError


def test_differing_keys_counts_missing_as_none():
    assert compare.differing_keys({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": None}) == ["b"]
    assert compare.differing_keys(None, {"a": 1}) == ["a"]
    assert compare.differing_keys({"a": 1}, {"a": 1}) == []


def test_result_carries_the_diff_and_decides_changed():
    out = compare.result({"x": 1}, {"x": 2}, extra="yes")
    assert out == {"changed": True, "diff": {"before": {"x": 1}, "after": {"x": 2}}, "extra": "yes"}
    assert compare.result({"x": 1}, {"x": 1})["changed"] is False
    assert compare.result(None, None, changed=True)["diff"] == {"before": {}, "after": {}}


def test_ids_and_names_compare_case_insensitively():
    assert compare.same_id("/subscriptions/S/resourceGroups/RG/x", "/subscriptions/s/resourcegroups/rg/X")
    assert not compare.same_id(None, "/x")
    assert set(compare.by_name([{"name": "Route-A"}, {"name": "b"}])) == {"route-a", "b"}


def test_parse_id():
    parts = parse_id("/subscriptions/sub/resourceGroups/rg1/providers/Microsoft.Network/virtualNetworks/vnet1/subnets/app")
    assert parts == {"subscription": "sub", "resource_group": "rg1", "virtualnetworks": "vnet1", "subnets": "app"}


def test_error_message_names_the_field_and_azure_code():
    err = AnycastError("route_server", "busy", code="AnotherOperationInProgress", status=409)
    assert str(err) == "route_server: AnotherOperationInProgress: busy"
    assert err.fail_kwargs() == {"msg": "route_server: AnotherOperationInProgress: busy",
                                 "error": {"field": "route_server", "code": "AnotherOperationInProgress", "message": "busy", "status": 409}}
    assert str(AnycastError("peer_ip", "bad")) == "peer_ip: bad"
