"""anycast.nva.route_table through ansible-playbook against the ARM emulator."""
import pytest
from azure.core.exceptions import ResourceNotFoundError

from anycast_lab.playbook_runner import RG, SPOKE_VNET

APP1 = {"virtual_network": SPOKE_VNET, "name": "snet-app"}
ROUTES = [
    {"name": "onprem", "address_prefix": "172.16.0.0/16", "next_hop_type": "VirtualAppliance", "next_hop_ip_address": "10.10.2.4"},
    {"name": "blackhole", "address_prefix": "192.168.66.0/24", "next_hop_type": "None"},
]


def table_args(**extra):
    return dict(dict(name="rt-spoke", resource_group=RG, location="westeurope", routes=ROUTES, subnets=[APP1]), **extra)


def routes_in_azure(network, name="rt-spoke"):
    table = network.route_tables.get(RG, name)
    return sorted((r.name, r.address_prefix, r.next_hop_type, r.next_hop_ip_address) for r in table.routes or [])


def route_table_of(network, subnet):
    route_table = network.subnets.get(RG, SPOKE_VNET, subnet).route_table
    return route_table.id.rsplit("/", 1)[-1] if route_table else None


def test_lifecycle(run_module, network):
    # create: one PUT for the table with its routes, one PUT for the subnet
    created = run_module("route_table", table_args())
    assert created["changed"] is True, created
    assert created["writes"] == 2
    assert routes_in_azure(network) == [("blackhole", "192.168.66.0/24", "None", None), ("onprem", "172.16.0.0/16", "VirtualAppliance", "10.10.2.4")]
    assert route_table_of(network, "snet-app") == "rt-spoke"
    assert created["diff"]["before"] == {}
    assert [r["name"] for r in created["diff"]["after"]["routes"]] == ["blackhole", "onprem"]
    assert created["associated"] == [network.subnets.get(RG, SPOKE_VNET, "snet-app").id]

    # rerun: nothing to do, nothing sent
    again = run_module("route_table", table_args())
    assert again["changed"] is False and again["writes"] == 0, again

    # update: new next hop, one route dropped (purge), BGP propagation off, one more subnet
    routes = [dict(ROUTES[0], next_hop_ip_address="10.10.2.5"), {"name": "anycast", "address_prefix": "10.250.0.10/32", "next_hop_type": "VnetLocal"}]
    updated = run_module("route_table", table_args(routes=routes, disable_bgp_route_propagation=True,
                                                   subnets=[APP1, {"virtual_network": SPOKE_VNET, "name": "snet-app2"}]))
    assert updated["changed"] is True and updated["writes"] == 2, updated
    assert routes_in_azure(network) == [("anycast", "10.250.0.10/32", "VnetLocal", None), ("onprem", "172.16.0.0/16", "VirtualAppliance", "10.10.2.5")]
    assert network.route_tables.get(RG, "rt-spoke").disable_bgp_route_propagation is True
    assert route_table_of(network, "snet-app2") == "rt-spoke"
    before = {r["name"]: r for r in updated["diff"]["before"]["routes"]}
    after = {r["name"]: r for r in updated["diff"]["after"]["routes"]}
    assert before["onprem"]["next_hop_ip_address"] == "10.10.2.4" and after["onprem"]["next_hop_ip_address"] == "10.10.2.5"
    assert "blackhole" in before and "blackhole" not in after and "anycast" in after
    assert updated["diff"]["before"]["disable_bgp_route_propagation"] is False
    assert updated["diff"]["after"]["disable_bgp_route_propagation"] is True

    # check mode: reports the change, sends nothing, Azure unchanged
    checked = run_module("route_table", table_args(routes=ROUTES, subnets=[APP1]), check=True)
    assert checked["changed"] is True and checked["writes"] == 0, checked
    assert "blackhole" in [r["name"] for r in checked["diff"]["after"]["routes"]]
    assert ("anycast", "10.250.0.10/32", "VnetLocal", None) in routes_in_azure(network)

    # purge_routes false keeps the unlisted routes
    kept = run_module("route_table", table_args(routes=[ROUTES[1]], purge_routes=False, subnets=[]))
    assert kept["changed"] is True and kept["writes"] == 1
    assert [r[0] for r in routes_in_azure(network)] == ["anycast", "blackhole", "onprem"]

    # absent: only the subnets listed are dissociated, then the table goes
    gone = run_module("route_table", dict(name="rt-spoke", resource_group=RG, state="absent",
                                          dissociate_subnets=[APP1, {"virtual_network": SPOKE_VNET, "name": "snet-app2"}]))
    assert gone["changed"] is True and gone["writes"] == 3, gone
    assert gone["diff"]["after"] == {} and gone["diff"]["before"]["name"] == "rt-spoke"
    with pytest.raises(ResourceNotFoundError):
        network.route_tables.get(RG, "rt-spoke")
    assert route_table_of(network, "snet-app") is None and route_table_of(network, "snet-app2") is None

    # absent again: nothing to do
    again = run_module("route_table", dict(name="rt-spoke", resource_group=RG, state="absent"))
    assert again["changed"] is False and again["writes"] == 0, again


def test_subnets_are_never_dissociated_silently(run_module, network):
    assert run_module("route_table", table_args(subnets=[APP1, {"virtual_network": SPOKE_VNET, "name": "snet-app2"}]))["changed"]
    # app2 is no longer listed, but not listed for dissociation either: it stays
    kept = run_module("route_table", table_args(subnets=[APP1]))
    assert kept["changed"] is False and kept["writes"] == 0
    assert route_table_of(network, "snet-app2") == "rt-spoke"
    # deleting the table while app2 uses it is refused before any write
    refused = run_module("route_table", dict(name="rt-spoke", resource_group=RG, state="absent", dissociate_subnets=[APP1]))
    assert refused.get("failed") and refused["writes"] == 0
    assert refused["msg"].startswith("dissociate_subnets:") and "snet-app2" in refused["msg"]
    # purge_subnets dissociates what is not listed
    purged = run_module("route_table", table_args(subnets=[APP1], purge_subnets=True))
    assert purged["changed"] is True and purged["writes"] == 1
    assert route_table_of(network, "snet-app2") is None and route_table_of(network, "snet-app") == "rt-spoke"


def test_a_route_listed_in_other_letter_case_converges(run_module, network):
    # Azure's names are case-insensitive and a route keeps the case it was created with: listing "OnPrem" for the
    # route "onprem" is the same route; the module must not PUT it again on every run.
    assert run_module("route_table", table_args())["changed"]
    renamed = [dict(ROUTES[0], name="OnPrem"), ROUTES[1]]
    first = run_module("route_table", table_args(routes=renamed))
    assert first["changed"] is False and first["writes"] == 0, first
    assert [r[0] for r in routes_in_azure(network)] == ["blackhole", "onprem"]
    # a real change to that route still lands, under the name Azure has
    moved = run_module("route_table", table_args(routes=[dict(renamed[0], next_hop_ip_address="10.10.2.5"), ROUTES[1]]))
    assert moved["changed"] is True and moved["writes"] == 1, moved
    assert ("onprem", "172.16.0.0/16", "VirtualAppliance", "10.10.2.5") in routes_in_azure(network)
    again = run_module("route_table", table_args(routes=[dict(renamed[0], next_hop_ip_address="10.10.2.5"), ROUTES[1]]))
    assert again["changed"] is False and again["writes"] == 0, again
