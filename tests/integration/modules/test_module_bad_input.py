"""Bad input: every case fails, names the option at fault, and sends no write to Azure."""
import pytest

from anycast_lab.playbook_runner import HUB, HUB_VNET, RG, SPOKE_VNET

VA = {"name": "onprem", "address_prefix": "172.16.0.0/16", "next_hop_type": "VirtualAppliance", "next_hop_ip_address": "10.10.2.4"}


def table(**extra):
    return dict(dict(name="rt-spoke", resource_group=RG, location="westeurope", routes=[VA]), **extra)


def peer(**extra):
    return dict(dict(route_server=HUB, resource_group=RG, name="nva1", peer_ip="10.10.2.4", peer_asn=65001), **extra)


def guard(**extra):
    return dict(dict(prefix="10.250.0.10/32", resource_group=RG, virtual_networks=[{"name": HUB_VNET}, {"name": SPOKE_VNET}],
                     on_premises_prefixes=["172.16.0.0/16"]), **extra)


CASES = [
    # (id, module, args, the message starts with, and contains)
    ("peer-ip-malformed", "route_server_peer", peer(peer_ip="10.10.2.300"), "peer_ip:", "not a valid IPv4 address"),
    ("peer-asn-reserved-65515", "route_server_peer", peer(peer_asn=65515), "peer_asn:", "reserved by Azure"),
    ("peer-asn-reserved-12076", "route_server_peer", peer(peer_asn=12076), "peer_asn:", "reserved by Azure"),
    ("peer-asn-reserved-range", "route_server_peer", peer(peer_asn=65540), "peer_asn:", "65535-65551"),
    ("peer-asn-zero", "route_server_peer", peer(peer_asn=0), "peer_asn:", "out of range"),
    ("peer-asn-above-32-bit", "route_server_peer", peer(peer_asn=4294967296), "peer_asn:", "out of range"),
    ("peer-ip-outside-hub-vnet", "route_server_peer", peer(peer_ip="10.11.1.4"), "peer_ip:", "outside"),
    ("peer-unknown-route-server", "route_server_peer", peer(route_server="rs-nope"), "route_server:", "not found"),
    ("peer-unknown-resource-group", "route_server_peer", peer(resource_group="rg-nope"), "resource_group:", "ResourceGroupNotFound"),
    ("info-unknown-route-server", "route_server_info", dict(name="rs-nope", resource_group=RG), "name:", "not found"),
    ("guard-not-a-32", "anycast_prefix_guard", guard(prefix="10.250.0.0/24"), "prefix:", "/32"),
    ("guard-malformed", "anycast_prefix_guard", guard(prefix="10.250.0"), "prefix:", "not a valid"),
    ("guard-overlaps-vnet", "anycast_prefix_guard", guard(prefix="10.11.200.1/32"), "prefix:", "vnet-spoke-weu"),
    ("guard-overlaps-on-premises", "anycast_prefix_guard", guard(prefix="172.16.9.9"), "prefix:", "on-premises"),
    ("guard-unknown-vnet", "anycast_prefix_guard", guard(virtual_networks=[{"name": "vnet-nope"}]), "virtual_networks[0]:", "not found"),
    ("route-invalid-next-hop-type", "route_table", table(routes=[dict(VA, next_hop_type="Firewall")]), "", "next_hop_type"),
    ("route-missing-next-hop-ip", "route_table", table(routes=[dict(VA, next_hop_ip_address=None)]),
     "routes[0].next_hop_ip_address:", "required when next_hop_type is VirtualAppliance"),
    ("route-bad-next-hop-ip", "route_table", table(routes=[dict(VA, next_hop_ip_address="10.10.2")]), "routes[0].next_hop_ip_address:", "not a valid"),
    ("route-next-hop-ip-not-allowed", "route_table", table(routes=[dict(VA, next_hop_type="Internet")]), "routes[0].next_hop_ip_address:", "only allowed"),
    ("route-bad-cidr", "route_table", table(routes=[dict(VA, address_prefix="172.16.0.1/16")]), "routes[0].address_prefix:", "not a valid IPv4 CIDR"),
    ("route-not-cidr", "route_table", table(routes=[dict(VA, address_prefix="172.16.0.0")]), "routes[0].address_prefix:", "CIDR"),
    ("route-bad-name", "route_table", table(routes=[dict(VA, name="bad name!")]), "routes[0].name:", "not a valid Azure resource name"),
    ("route-duplicate-name", "route_table", table(routes=[VA, dict(VA, address_prefix="10.0.0.0/8")]), "routes[1].name:", "twice"),
    ("table-unknown-subnet", "route_table", table(subnets=[{"virtual_network": SPOKE_VNET, "name": "snet-nope"}]), "subnets[0]:", "not found"),
    ("table-unknown-resource-group", "route_table", table(resource_group="rg-nope"), "resource_group:", "ResourceGroupNotFound"),
    ("table-create-without-location", "route_table", table(location=None), "location:", "required"),
    ("nic-unknown", "nic_ip_forwarding", dict(resource_group=RG, nics=["nic-nva1-weu", "nic-nope"]), "nics[1]:", "not found"),
    ("wrong-client-secret", "route_table", table(secret="not-the-secret"), "auth_source:", "could not get a token"),
    ("unknown-subscription", "route_table", table(subscription_id="00000000-0000-4000-8000-00000000dead"), "subscription_id:", "SubscriptionNotFound"),
    ("route-server-create-without-vnet", "route_server", dict(name="rs-new", resource_group=RG, create=True, location="westeurope"),
     "virtual_network:", "required"),
    # Well-formed but impossible: Azure would refuse it, or accept it and never make it work.
    ("peer-at-route-server-instance-ip", "route_server_peer", peer(peer_ip="10.10.1.4"), "peer_ip:", "an address of the Route Server itself"),
    ("peer-in-route-server-subnet", "route_server_peer", peer(peer_ip="10.10.1.20"), "peer_ip:", "inside RouteServerSubnet"),
    ("peer-at-subnet-network-address", "route_server_peer", peer(peer_ip="10.10.2.0"), "peer_ip:", "the first four and the last"),
    ("peer-at-azure-gateway-address", "route_server_peer", peer(peer_ip="10.10.2.1"), "peer_ip:", "the first four and the last"),
    ("peer-at-subnet-broadcast-address", "route_server_peer", peer(peer_ip="10.10.2.255"), "peer_ip:", "the first four and the last"),
    ("peer-in-no-subnet", "route_server_peer", peer(peer_ip="10.10.200.4"), "peer_ip:", "in no subnet of VNet vnet-hub-weu"),
    ("peer-asn-4-byte", "route_server_peer", peer(peer_asn=4200000000), "peer_asn:", "2-byte ASNs"),
    ("table-on-route-server-subnet", "route_table", table(subnets=[{"virtual_network": HUB_VNET, "name": "RouteServerSubnet"}]),
     "subnets[0].name:", "RouteServerSubnet"),
    ("table-create-in-unknown-location", "route_table", table(location="marsnorth"), "location: LocationNotAvailable:", "not a location"),
    ("route-server-create-in-unknown-location", "route_server", dict(name="rs-new", resource_group=RG, create=True, location="marsnorth",
                                                                     virtual_network=HUB_VNET), "location: LocationNotAvailable:", "not a location"),
    ("table-401-routes", "route_table", table(routes=[dict(VA, name="r%d" % i, address_prefix="10.%d.%d.0/24" % (100 + i // 256, i % 256))
                                                      for i in range(401)]), "routes:", "at most 400"),
    ("nic-listed-twice", "nic_ip_forwarding", dict(resource_group=RG, nics=["nic-nva1-weu", "NIC-NVA1-WEU"]), "nics[1]:", "already listed as nics[0]"),
    ("guard-unspecified", "anycast_prefix_guard", guard(prefix="0.0.0.0/32"), "prefix:", "the unspecified address"),
    ("guard-broadcast", "anycast_prefix_guard", guard(prefix="255.255.255.255/32"), "prefix:", "the broadcast address"),
    ("guard-loopback", "anycast_prefix_guard", guard(prefix="127.0.0.1/32"), "prefix:", "a loopback address"),
    ("guard-multicast", "anycast_prefix_guard", guard(prefix="224.0.0.5/32"), "prefix:", "a multicast address"),
    ("guard-link-local", "anycast_prefix_guard", guard(prefix="169.254.10.10/32"), "prefix:", "a link-local address"),
    ("guard-azure-platform-ip", "anycast_prefix_guard", guard(prefix="168.63.129.16/32"), "prefix:", "Azure reserves for its platform"),
    ("guard-azure-metadata-ip", "anycast_prefix_guard", guard(prefix="169.254.169.254"), "prefix:", "Azure reserves for its platform"),
]


@pytest.mark.parametrize("module, args, prefix, words", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input_fails_naming_the_field_without_writing(run_module, module, args, prefix, words):
    result = run_module(module, args)
    assert result["failed"] is True, result
    assert result["msg"].startswith(prefix), result["msg"]
    assert words in result["msg"], result["msg"]
    assert result["writes"] == 0


def test_a_ninth_peer_is_refused_before_any_write(run_module, lab):
    lab.seed({"subscription_id": lab.subscription_id, "tenant_id": lab.tenant_id, "resources": [
        {"id": lab.rid("virtualHubs/%s/bgpConnections/nva%d" % (HUB, i)), "body": {"properties": {"peerIp": "10.10.2.%d" % (10 + i), "peerAsn": 65001}}}
        for i in range(1, 9)]})
    result = run_module("route_server_peer", peer(name="nva9", peer_ip="10.10.2.30"))
    assert result["failed"] is True and result["writes"] == 0, result
    assert result["msg"].startswith("route_server:") and "at most 8" in result["msg"]


def test_a_table_is_not_associated_with_a_subnet_of_another_region(run_module, lab, network):
    lab.seed({"subscription_id": lab.subscription_id, "tenant_id": lab.tenant_id, "resources": [
        {"id": lab.rid("virtualNetworks/vnet-spoke-neu"),
         "body": {"location": "northeurope", "properties": {"addressSpace": {"addressPrefixes": ["10.21.0.0/16"]},
                                                            "subnets": [{"name": "snet-app", "properties": {"addressPrefix": "10.21.1.0/24"}}]}}}]})
    result = run_module("route_table", table(subnets=[{"virtual_network": SPOKE_VNET, "name": "snet-app"},
                                                      {"virtual_network": "vnet-spoke-neu", "name": "snet-app"}]))
    assert result["failed"] is True and result["writes"] == 0, result
    assert result["msg"].startswith("subnets[1]:") and "northeurope" in result["msg"] and "westeurope" in result["msg"], result["msg"]
    # the same table on its own region's subnet is fine
    assert run_module("route_table", table(subnets=[{"virtual_network": SPOKE_VNET, "name": "snet-app"}]))["writes"] == 2
