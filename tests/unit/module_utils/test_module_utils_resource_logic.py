"""Pure parts of the resource logic: input checks and the desired state computed from Azure's answer."""
import ipaddress

import pytest

from ansible_collections.anycast.nva.plugins.module_utils import anycast_prefix_guard, route_server_peer, route_table
from ansible_collections.anycast.nva.plugins.module_utils.errors import AnycastError

VA = {"name": "onprem", "address_prefix": "172.16.0.0/16", "next_hop_type": "VirtualAppliance", "next_hop_ip_address": "10.10.2.4"}


@pytest.fixture
def table_params(module_params):
    """route_table's params from its argument spec: defaults filled, the VA route, then what the test gives."""
    return lambda **given: module_params(route_table.ARGUMENT_SPEC, **dict(dict(name="rt", resource_group="rg", location="westeurope", routes=[VA]), **given))


@pytest.fixture
def peer_params(module_params):
    """route_server_peer's params from its argument spec: defaults filled, then what the test gives."""
    return lambda **given: module_params(route_server_peer.ARGUMENT_SPEC, **dict(dict(route_server="rs", resource_group="rg", name="nva1"), **given))


def azure_table(*routes):
    """A route table as ARM returns it."""
    return {"name": "rt", "location": "westeurope", "properties": {"disableBgpRoutePropagation": False, "routes": [
        {"name": name, "properties": dict({"addressPrefix": prefix, "nextHopType": hop}, **({"nextHopIpAddress": ip} if ip else {}))}
        for name, prefix, hop, ip in routes]}}


def test_route_table_accepts_good_input(table_params):
    params = table_params(routes=[VA, {"name": "local", "address_prefix": "10.250.0.10/32", "next_hop_type": "VnetLocal"}],
                          subnets=[{"virtual_network": "v", "name": "a"}], dissociate_subnets=[{"virtual_network": "v", "name": "b"}])
    routes = route_table.validate(params)
    assert routes == [{"name": "onprem", "address_prefix": ipaddress.IPv4Network("172.16.0.0/16"), "next_hop_type": "VirtualAppliance",
                       "next_hop_ip_address": ipaddress.IPv4Address("10.10.2.4")},
                      {"name": "local", "address_prefix": ipaddress.IPv4Network("10.250.0.10/32"), "next_hop_type": "VnetLocal", "next_hop_ip_address": None}]


def test_route_table_without_routes_leaves_them_alone(table_params):
    assert route_table.validate(table_params(routes=None)) is None


@pytest.mark.parametrize("routes, field", [
    ([dict(VA, next_hop_ip_address=None)], "routes[0].next_hop_ip_address"),
    ([dict(VA, next_hop_ip_address="10.10.2.999")], "routes[0].next_hop_ip_address"),
    ([dict(VA, next_hop_type="VnetLocal")], "routes[0].next_hop_ip_address"),
    ([dict(VA, address_prefix="172.16.0.1/16")], "routes[0].address_prefix"),
    ([VA, dict(VA, name="ONPREM", address_prefix="10.0.0.0/8")], "routes[1].name"),
    ([VA, dict(VA, name="other")], "routes[1].address_prefix"),
    ([dict(VA, name="-x")], "routes[0].name"),
])
def test_route_table_refuses_bad_routes(table_params, routes, field):
    with pytest.raises(AnycastError) as err:
        route_table.validate(table_params(routes=routes))
    assert err.value.field == field


def test_a_subnet_cannot_be_both_associated_and_dissociated(table_params):
    subnet = {"virtual_network": "v", "name": "a", "resource_group": None}
    with pytest.raises(AnycastError) as err:
        route_table.validate(table_params(subnets=[subnet], dissociate_subnets=[dict(subnet, resource_group="RG")]))
    assert err.value.field == "dissociate_subnets[0]"


def desired(params, current_routes):
    """desired_routes() as ensure() calls it: with the routes validate() parsed."""
    return route_table.desired_routes(route_table.validate(params), params["purge_routes"], current_routes)


def test_purge_replaces_the_routes_and_normalises_input(table_params):
    current = route_table.table_view(azure_table(("old", "10.0.0.0/8", "None", None), ("onprem", "172.16.0.0/16", "VirtualAppliance", "10.10.2.5")))
    wanted = desired(table_params(routes=[dict(VA, address_prefix=" 172.16.0.0/16 ")]), current["routes"])
    assert wanted == [{"name": "onprem", "address_prefix": "172.16.0.0/16", "next_hop_type": "VirtualAppliance", "next_hop_ip_address": "10.10.2.4"}]


def test_without_purge_unlisted_routes_stay_and_listed_names_win(table_params):
    current = route_table.table_view(azure_table(("old", "10.0.0.0/8", "None", None), ("onprem", "172.16.0.0/16", "VirtualAppliance", "10.10.2.5")))
    wanted = desired(table_params(purge_routes=False), current["routes"])
    assert [(r["name"], r["next_hop_ip_address"]) for r in wanted] == [("old", None), ("onprem", "10.10.2.4")]


def test_omitted_routes_are_left_alone(table_params):
    current = route_table.table_view(azure_table(("old", "10.0.0.0/8", "None", None)))
    assert desired(table_params(routes=None), current["routes"]) == current["routes"]


def test_the_same_routes_in_another_order_are_no_change(table_params):
    table = azure_table(("b", "10.2.0.0/16", "None", None), ("a", "10.1.0.0/16", "Internet", None))
    current = route_table.table_view(table)
    wanted = desired(table_params(routes=[
        {"name": "a", "address_prefix": "10.1.0.0/16", "next_hop_type": "Internet", "next_hop_ip_address": None},
        {"name": "b", "address_prefix": "10.2.0.0/16", "next_hop_type": "None", "next_hop_ip_address": None}]), current["routes"])
    assert wanted == current["routes"]


def test_the_table_body_embeds_every_route_and_keeps_tags():
    view = dict(name="rt", location="westeurope", disable_bgp_route_propagation=True,
                routes=[{"name": "onprem", "address_prefix": "172.16.0.0/16", "next_hop_type": "VirtualAppliance", "next_hop_ip_address": "10.10.2.4"},
                        {"name": "local", "address_prefix": "10.250.0.10/32", "next_hop_type": "VnetLocal", "next_hop_ip_address": None}])
    body = route_table.table_body({"tags": {"team": "net"}}, view).as_dict()
    assert body == {"location": "westeurope", "tags": {"team": "net"}, "properties": {"disableBgpRoutePropagation": True, "routes": [
        {"name": "onprem", "properties": {"addressPrefix": "172.16.0.0/16", "nextHopType": "VirtualAppliance", "nextHopIpAddress": "10.10.2.4"}},
        {"name": "local", "properties": {"addressPrefix": "10.250.0.10/32", "nextHopType": "VnetLocal"}}]}}


@pytest.mark.parametrize("extra, field", [
    ({"peer_asn": 65515}, "peer_asn"),
    ({"peer_asn": None}, "peer_asn"),
    ({"peer_ip": "10.10.2"}, "peer_ip"),
    ({"peer_ip": None}, "peer_ip"),
    ({"name": "nva 1"}, "name"),
    ({"route_server": ""}, "route_server"),
])
def test_peer_input_is_checked_before_azure(peer_params, extra, field):
    with pytest.raises(AnycastError) as err:
        route_server_peer.validate(peer_params(**dict(dict(peer_ip="10.10.2.4", peer_asn=65001), **extra)))
    assert err.value.field == field


def test_peer_input_is_parsed_once(peer_params):
    parsed = route_server_peer.validate(peer_params(peer_ip=" 10.10.2.4", peer_asn="65001"))
    assert parsed == {"peer_ip": ipaddress.IPv4Address("10.10.2.4"), "peer_asn": 65001}


def test_an_absent_peer_needs_no_address_or_asn(peer_params):
    assert route_server_peer.validate(peer_params(state="absent")) == {"peer_ip": None, "peer_asn": None}


def test_the_guard_parses_the_prefix_and_the_on_premises_prefixes_once(module_params):
    parsed = anycast_prefix_guard.validate(module_params(anycast_prefix_guard.ARGUMENT_SPEC, prefix="10.250.0.10",
                                                         on_premises_prefixes=["172.16.0.0/16"], virtual_networks=[{"name": "vnet-hub"}]))
    assert parsed == {"prefix": ipaddress.IPv4Network("10.250.0.10/32"), "on_premises_prefixes": [ipaddress.IPv4Network("172.16.0.0/16")]}


@pytest.mark.parametrize("given, field", [
    ({"prefix": "10.250.0.0/24"}, "prefix"),
    ({"on_premises_prefixes": ["172.16.0.1/16"]}, "on_premises_prefixes[0]"),
    ({"virtual_networks": [{"name": "vnet hub"}]}, "virtual_networks[0].name"),
])
def test_the_guard_refuses_bad_input_before_azure(module_params, given, field):
    with pytest.raises(AnycastError) as err:
        anycast_prefix_guard.validate(module_params(anycast_prefix_guard.ARGUMENT_SPEC, **dict(dict(prefix="10.250.0.10/32"), **given)))
    assert err.value.field == field
