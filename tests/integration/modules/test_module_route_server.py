"""anycast.nva.route_server_info and anycast.nva.route_server."""
import pytest
from azure.core.exceptions import ResourceNotFoundError

from anycast_lab.playbook_runner import HUB, HUB_VNET, RG

LEARNED = {"RouteServiceRole_IN_0": [{"localAddress": "10.10.1.4", "network": "10.250.0.10/32", "nextHop": "10.10.2.4",
                                      "sourcePeer": "10.10.2.4", "origin": "EBgp", "asPath": "65001", "weight": 32768}],
           "RouteServiceRole_IN_1": [{"localAddress": "10.10.1.5", "network": "10.250.0.10/32", "nextHop": "10.10.2.4",
                                      "sourcePeer": "10.10.2.4", "origin": "EBgp", "asPath": "65001", "weight": 32768}]}


def test_info_returns_the_route_server_its_peers_and_their_routes(run_module, lab):
    assert run_module("route_server_peer", dict(route_server=HUB, resource_group=RG, name="nva1", peer_ip="10.10.2.4", peer_asn=65001))["changed"]
    lab.set_routes(HUB, "nva1", learned=LEARNED)
    lab.clear_requests()

    plain = run_module("route_server_info", dict(name=HUB, resource_group=RG))
    assert plain["changed"] is False and plain["writes"] == 0
    facts = plain["route_server"]
    assert facts["asn"] == 65515 and facts["instance_ips"] == ["10.10.1.4", "10.10.1.5"]
    assert facts["routing_state"] == "Provisioned" and facts["provisioning_state"] == "Succeeded"
    assert facts["allow_branch_to_branch_traffic"] is False and facts["hub_routing_preference"] == "ExpressRoute"
    assert [(p["name"], p["peer_ip"], p["peer_asn"]) for p in facts["peers"]] == [("nva1", "10.10.2.4", 65001)]
    assert facts["peers"][0]["connection_state"]
    assert "learned_routes" not in facts["peers"][0]

    full = run_module("route_server_info", dict(name=HUB, resource_group=RG, include_routes=True))
    assert full["writes"] == 0 and lab.route_reads() == 2
    first = full["route_server"]["peers"][0]
    assert sorted(first["learned_routes"]) == ["RouteServiceRole_IN_0", "RouteServiceRole_IN_1"]
    assert first["learned_routes"]["RouteServiceRole_IN_1"] == [{"local_address": "10.10.1.5", "network": "10.250.0.10/32", "next_hop": "10.10.2.4",
                                                                 "source_peer": "10.10.2.4", "origin": "EBgp", "as_path": "65001", "weight": 32768}]
    advertised = first["advertised_routes"]["RouteServiceRole_IN_0"]
    assert "10.10.0.0/16" in [r["network"] for r in advertised]


def test_ensure_branch_to_branch_and_routing_preference(run_module, network):
    changed = run_module("route_server", dict(name=HUB, resource_group=RG, allow_branch_to_branch_traffic=True))
    assert changed["changed"] is True and changed["writes"] == 1, changed
    assert changed["changed_keys"] == ["allow_branch_to_branch_traffic"]
    assert changed["diff"]["before"]["allow_branch_to_branch_traffic"] is False
    assert changed["diff"]["after"]["allow_branch_to_branch_traffic"] is True
    assert changed["route_server"]["routing_state"] == "Provisioned"
    assert network.virtual_hubs.get(RG, HUB).allow_branch_to_branch_traffic is True

    again = run_module("route_server", dict(name=HUB, resource_group=RG, allow_branch_to_branch_traffic=True))
    assert again["changed"] is False and again["writes"] == 0, again

    checked = run_module("route_server", dict(name=HUB, resource_group=RG, hub_routing_preference="ASPath"), check=True)
    assert checked["changed"] is True and checked["writes"] == 0
    assert checked["diff"]["after"]["hub_routing_preference"] == "ASPath"
    assert network.virtual_hubs.get(RG, HUB).hub_routing_preference == "ExpressRoute"

    updated = run_module("route_server", dict(name=HUB, resource_group=RG, hub_routing_preference="ASPath"))
    assert updated["changed"] is True and updated["writes"] == 1
    hub = network.virtual_hubs.get(RG, HUB)
    assert hub.hub_routing_preference == "ASPath" and hub.allow_branch_to_branch_traffic is True


def test_create_waits_for_routing_then_delete(run_module, network, lab):
    # A second Route Server in the same VNet is not possible: remove the seeded one first.
    gone = run_module("route_server", dict(name=HUB, resource_group=RG, state="absent"))
    assert gone["changed"] is True and gone["writes"] == 2, gone  # ipConfiguration, then the hub
    with pytest.raises(ResourceNotFoundError):
        network.virtual_hubs.get(RG, HUB)
    again = run_module("route_server", dict(name=HUB, resource_group=RG, state="absent"))
    assert again["changed"] is False and again["writes"] == 0

    missing = run_module("route_server", dict(name="rs-new", resource_group=RG))
    assert missing["failed"] and missing["msg"].startswith("name:") and "create: true" in missing["msg"] and missing["writes"] == 0

    lab.settings(routing_delay=3)
    args = dict(name="rs-new", resource_group=RG, create=True, location="westeurope", virtual_network=HUB_VNET, allow_branch_to_branch_traffic=True)
    checked = run_module("route_server", args, check=True)
    assert checked["changed"] is True and checked["writes"] == 0
    created = run_module("route_server", args)
    assert created["changed"] is True and created["writes"] == 3, created  # Standard public IP, hub, ipConfiguration
    assert created["route_server"]["routing_state"] == "Provisioned"
    assert created["route_server"]["instance_ips"] == ["10.10.1.4", "10.10.1.5"]
    assert created["diff"]["before"] == {} and created["diff"]["after"]["allow_branch_to_branch_traffic"] is True
    hub = network.virtual_hubs.get(RG, "rs-new")
    assert hub.sku == "Standard" and hub.routing_state == "Provisioned"
    assert network.public_ip_addresses.get(RG, "rs-new-pip").sku.name == "Standard"
    config = network.virtual_hub_ip_configuration.get(RG, "rs-new", "ipconfig1")
    assert config.subnet.id.endswith("/virtualNetworks/%s/subnets/RouteServerSubnet" % HUB_VNET)
    again = run_module("route_server", args)
    assert again["changed"] is False and again["writes"] == 0


def hub_vnet(name, space, subnet):
    return {"resource_group": RG, "name": name, "address_prefixes": [space], "subnets": [{"name": "RouteServerSubnet", "address_prefix": subnet}]}


def second_hub_vnets(lab):
    """Two more VNets in the region: vnet-hub2 with a free RouteServerSubnet (/27), vnet-small with a /28 one, and a Basic public IP."""
    lab.seed({"subscription_id": lab.subscription_id, "tenant_id": lab.tenant_id,
              "virtual_networks": [hub_vnet("vnet-hub2", "10.30.0.0/16", "10.30.1.0/27"), hub_vnet("vnet-small", "10.31.0.0/16", "10.31.1.0/28")],
              "resources": [{"id": lab.rid("publicIPAddresses/pip-basic"),
                             "body": {"location": "westeurope", "sku": {"name": "Basic"}, "properties": {"publicIPAllocationMethod": "Static"}}}]})


CREATE = dict(name="rs-new", resource_group=RG, create=True, location="westeurope", virtual_network="vnet-hub2")
IMPOSSIBLE_CREATES = [
    # (id, changed arguments, the message starts with, and contains)
    ("not-route-server-subnet", dict(virtual_network=HUB_VNET, subnet="snet-nva"), "subnet:", "must use the subnet named RouteServerSubnet"),
    ("subnet-of-another-hub", dict(virtual_network=HUB_VNET), "subnet:", "already used by"),
    ("subnet-too-small", dict(virtual_network="vnet-small"), "subnet:", "needs a /27 or larger"),
    ("other-region-than-vnet", dict(location="northeurope"), "location:", "VNet vnet-hub2 is in westeurope"),
    ("public-ip-of-another-hub", dict(public_ip="%s-pip" % HUB), "public_ip:", "already used by"),
    ("basic-public-ip", dict(public_ip="pip-basic"), "public_ip:", "not a Standard static public IP"),
]


@pytest.mark.parametrize("changes, prefix, words", [case[1:] for case in IMPOSSIBLE_CREATES], ids=[case[0] for case in IMPOSSIBLE_CREATES])
def test_an_impossible_create_is_refused_before_any_write(run_module, lab, changes, prefix, words):
    second_hub_vnets(lab)
    result = run_module("route_server", dict(CREATE, **changes))
    assert result["failed"] is True and result["writes"] == 0, result
    assert result["msg"].startswith(prefix) and words in result["msg"], result["msg"]


def test_a_half_built_route_server_is_completed_by_a_rerun(run_module, lab, network):
    second_hub_vnets(lab)
    # Azure never accepts the ipConfiguration: the public IP and the hub are written, then the task gives up.
    lab.inject(method="PUT", path="/virtualHubs/rs-new/ipConfigurations/", status=500, times=-1)
    half = run_module("route_server", CREATE, timeout=15)
    assert half["failed"] is True and half["msg"].startswith("timeout: InternalServerError: Azure did not accept the write to VirtualHubIpConfiguration ")
    assert network.virtual_hubs.get(RG, "rs-new").routing_state == "None"
    lab.clear_faults()

    # Without create: refused at once (not a wait for routing until the default timeout of 1800 s).
    waiting = run_module("route_server", dict(name="rs-new", resource_group=RG, allow_branch_to_branch_traffic=True))
    assert waiting["failed"] is True and waiting["writes"] == 0, waiting
    assert waiting["msg"].startswith("name: RouteServerIncomplete: ") and "no ipConfiguration" in waiting["msg"], waiting["msg"]

    repaired = run_module("route_server", CREATE)
    assert repaired["failed"] is False and repaired["changed"] is True, repaired
    assert repaired["writes"] == 1  # the ipConfiguration only: the public IP and the hub are reused
    assert repaired["route_server"]["routing_state"] == "Provisioned" and repaired["route_server"]["instance_ips"] == ["10.30.1.4", "10.30.1.5"]
    assert run_module("route_server", CREATE)["writes"] == 0
