"""anycast.nva.route_server_peer: lifecycle, replacement, retries on a busy / not-ready hub, parallel runs."""
import subprocess
import time

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.network.models import AddressSpace, SubResource, VirtualNetworkPeering

from anycast_lab.playbook_runner import HUB, HUB_VNET, RG, SPOKE_VNET


def peer(name="nva1", peer_ip="10.10.2.4", peer_asn=65001, **extra):
    return dict(dict(route_server=HUB, resource_group=RG, name=name, peer_ip=peer_ip, peer_asn=peer_asn), **extra)


def peers_in_azure(network):
    return sorted((c.name, c.peer_ip, c.peer_asn) for c in network.virtual_hub_bgp_connections.list(RG, HUB))


def test_lifecycle(run_module, network):
    created = run_module("route_server_peer", peer())
    assert created["changed"] is True and created["writes"] == 1, created
    assert created["replaced"] is False
    assert created["peer"]["provisioning_state"] == "Succeeded"
    assert created["diff"] == {"before": {}, "after": {"name": "nva1", "peer_ip": "10.10.2.4", "peer_asn": 65001}}
    assert peers_in_azure(network) == [("nva1", "10.10.2.4", 65001)]

    again = run_module("route_server_peer", peer())
    assert again["changed"] is False and again["writes"] == 0, again

    # Azure does not change a peer's ASN in place: delete + create only with replace: true, and the result and diff say so
    refused = run_module("route_server_peer", peer(peer_asn=65002))
    assert refused["failed"] is True and refused["writes"] == 0, refused
    assert refused["msg"].startswith("peer_asn: PropertyChangeNotAllowed: ") and "set replace: true" in refused["msg"], refused["msg"]
    updated = run_module("route_server_peer", peer(peer_asn=65002, replace=True))
    assert updated["changed"] is True and updated["replaced"] is True and updated["writes"] == 2, updated
    assert updated["diff"]["before"]["peer_asn"] == 65001 and updated["diff"]["after"]["peer_asn"] == 65002
    assert updated["diff"]["after_header"] == "peer nva1 deleted and created again (peer_asn cannot change in place)"
    assert peers_in_azure(network) == [("nva1", "10.10.2.4", 65002)]

    refused = run_module("route_server_peer", peer(peer_ip="10.10.2.9", peer_asn=65002), check=True)
    assert refused["failed"] is True and refused["msg"].startswith("peer_ip: "), refused
    checked = run_module("route_server_peer", peer(peer_ip="10.10.2.9", peer_asn=65002, replace=True), check=True)
    assert checked["changed"] is True and checked["replaced"] is True and checked["writes"] == 0, checked
    assert checked["diff"]["after"]["peer_ip"] == "10.10.2.9"
    assert peers_in_azure(network) == [("nva1", "10.10.2.4", 65002)]

    gone = run_module("route_server_peer", dict(route_server=HUB, resource_group=RG, name="nva1", state="absent"))
    assert gone["changed"] is True and gone["writes"] == 1, gone
    assert gone["diff"]["after"] == {}
    with pytest.raises(ResourceNotFoundError):
        network.virtual_hub_bgp_connection.get(RG, HUB, "nva1")

    again = run_module("route_server_peer", dict(route_server=HUB, resource_group=RG, name="nva1", state="absent"))
    assert again["changed"] is False and again["writes"] == 0, again


def test_waits_for_the_hub_routing_to_be_provisioned(run_module, network, lab):
    # Re-provisioning the hub's ipConfiguration puts its routing back to Provisioning for a few seconds.
    lab.settings(routing_delay=20)  # long enough for ansible-playbook to start on a loaded machine
    config = network.virtual_hub_ip_configuration.get(RG, HUB, "ipconfig1")
    network.virtual_hub_ip_configuration.begin_create_or_update(RG, HUB, "ipconfig1", config).result()
    assert network.virtual_hubs.get(RG, HUB).routing_state == "Provisioning"
    lab.clear_requests()

    created = run_module("route_server_peer", peer())
    assert created["changed"] is True, created
    puts = [r for r in lab.arm_requests("write") if "/bgpConnections/" in r["path"]]
    assert [r["status"] for r in puts][0] == 400 and puts[-1]["status"] in (200, 201), puts
    assert peers_in_azure(network) == [("nva1", "10.10.2.4", 65001)]


def test_four_parallel_runs_against_one_hub_all_succeed(run_module, network, lab):
    # The emulator, like Azure, refuses overlapping writes to one hub with 409 AnotherOperationInProgress.
    lab.settings(op_seconds=1.0)
    commands = [run_module.command("route_server_peer", peer(name="nva%d" % i, peer_ip="10.10.2.%d" % (3 + i)), timeout=120) for i in range(1, 5)]
    started = time.monotonic()
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for cmd, env in commands]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        results.append(run_module.parse(subprocess.CompletedProcess(proc.args, proc.returncode, out, err)))
    elapsed = time.monotonic() - started
    assert [r["failed"] for r in results] == [False] * 4, results
    assert all(r["changed"] for r in results)
    assert peers_in_azure(network) == [("nva%d" % i, "10.10.2.%d" % (3 + i), 65001) for i in range(1, 5)]
    conflicts = [r for r in lab.arm_requests("write") if r["status"] == 409]
    print("4 parallel peer registrations: %.1f s, %d refused with 409 and retried" % (elapsed, len(conflicts)))


def test_peer_ip_must_be_in_the_hub_vnet(run_module, network):
    hub_space = network.virtual_networks.get(RG, HUB_VNET).address_space.address_prefixes
    assert hub_space == ["10.10.0.0/16"]
    refused = run_module("route_server_peer", peer(peer_ip="10.11.1.4"))
    assert refused["failed"] and refused["writes"] == 0
    assert refused["msg"].startswith("peer_ip:") and "10.10.0.0/16" in refused["msg"]


def test_a_peer_in_a_directly_peered_vnet_is_accepted(run_module, network):
    # Route Server peers with NVAs in its own VNet and in VNets directly peered with it: the spoke, once peered.
    refused = run_module("route_server_peer", peer(peer_ip="10.11.1.4"))
    assert refused["failed"] and refused["writes"] == 0 and "directly peered" in refused["msg"], refused
    spoke = network.virtual_networks.get(RG, SPOKE_VNET)
    hub = network.virtual_networks.get(RG, HUB_VNET)
    hub.virtual_network_peerings = [VirtualNetworkPeering(name="hub-to-spoke", remote_virtual_network=SubResource(id=spoke.id),
                                                          remote_address_space=AddressSpace(address_prefixes=["10.11.0.0/16"]),
                                                          peering_state="Connected")]
    network.virtual_networks.begin_create_or_update(RG, HUB_VNET, hub).result()
    accepted = run_module("route_server_peer", peer(peer_ip="10.11.1.4"))
    assert accepted["changed"] is True and accepted["writes"] == 1, accepted
    assert peers_in_azure(network) == [("nva1", "10.11.1.4", 65001)]
    # in the peered VNet the same rules hold: an address in none of its subnets is refused
    elsewhere = run_module("route_server_peer", peer(name="nva2", peer_ip="10.11.200.4"))
    assert elsewhere["failed"] and elsewhere["writes"] == 0 and "in no subnet of VNet %s" % SPOKE_VNET in elsewhere["msg"], elsewhere


def test_a_replacement_whose_create_fails_puts_the_old_peer_back(run_module, network, lab):
    assert run_module("route_server_peer", peer())["changed"] is True
    # Every PUT of the new address fails with 500 (retried until the time kept for it runs out); the way back works.
    lab.inject(method="PUT", path="/bgpConnections/nva1$", body=r"10\.10\.2\.9", status=500, message="ARM is having a bad day.", times=-1)
    lab.clear_requests()
    started = time.monotonic()
    result = run_module("route_server_peer", peer(peer_ip="10.10.2.9", replace=True), timeout=30)
    elapsed = time.monotonic() - started
    assert result["failed"] is True, result
    assert result["msg"].startswith("timeout: InternalServerError: Azure did not accept the write to VirtualHubBgpConnection "), result["msg"]
    assert result["msg"].endswith("; the old peer (10.10.2.4, AS 65001) was put back"), result["msg"]
    assert peers_in_azure(network) == [("nva1", "10.10.2.4", 65001)]
    assert network.virtual_hub_bgp_connection.get(RG, HUB, "nva1").provisioning_state == "Succeeded"
    writes = [(r["method"], r["status"]) for r in lab.arm_requests("write")]
    assert writes[0] == ("DELETE", 202) and writes[-1] == ("PUT", 201) and set(writes[1:-1]) == {("PUT", 500)}, writes
    print("replacement failing with 500s: %d attempts of the new peer, old peer back, failed after %.1f s (timeout=30)" % (len(writes) - 2, elapsed))
