"""Optimistic concurrency: a change another client makes between a module's read and its write survives.

The emulator holds the module's PUT (a fault with a delay); while it is held, another client (the real SDK)
writes the same resource, so the module's If-Match carries a stale etag. Azure (and the emulator) answer 412;
the module reads the resource again, applies only its own change and writes again.
"""
import subprocess
import time

from azure.mgmt.network import models

from anycast_lab.playbook_runner import HUB, NICS, REPO, RG, SPOKE_VNET, Runner

HOLD = 4  # seconds the module's first PUT is held: the other client writes meanwhile


def run_with_a_write_in_between(run_module, lab, module, args, put_path, other_client_write):
    """Run the module; when its first PUT to put_path arrives, hold it, run other_client_write(), then let it go on.
    Returns the module's result and the statuses of every PUT to put_path (the other client's included)."""
    lab.inject(method="PUT", path=put_path, delay=HOLD, times=1)
    cmd, env = run_module.command(module, args)
    started = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while not any(fault["fired"] for fault in lab.faults()):
        assert proc.poll() is None and time.monotonic() - started < 120, "the module ended before its write"
        time.sleep(0.05)
    other_client_write()
    out, err = proc.communicate(timeout=180)
    result = Runner.parse(subprocess.CompletedProcess(cmd, proc.returncode, out, err))
    puts = [r["status"] for r in lab.arm_requests("write") if r["method"] == "PUT" and r["path"].endswith(put_path.rstrip("$"))]
    print("%s: PUT statuses %s (the other client's first), module run %.1f s with its write held %d s"
          % (module, puts, time.monotonic() - started, HOLD))
    return result, puts


def test_a_service_endpoint_added_while_the_route_table_is_associated_survives(run_module, lab, network):
    def add_service_endpoint():
        subnet = network.subnets.get(RG, SPOKE_VNET, "snet-app")
        subnet.service_endpoints = [models.ServiceEndpointPropertiesFormat(service="Microsoft.Storage")]
        network.subnets.begin_create_or_update(RG, SPOKE_VNET, "snet-app", subnet).result()

    args = dict(name="rt-spoke", resource_group=RG, location="westeurope", subnets=[{"virtual_network": SPOKE_VNET, "name": "snet-app"}],
                routes=[{"name": "onprem", "address_prefix": "172.16.0.0/16", "next_hop_type": "VirtualAppliance", "next_hop_ip_address": "10.10.2.4"}])
    result, puts = run_with_a_write_in_between(run_module, lab, "route_table", args, "/subnets/snet-app$", add_service_endpoint)
    assert result["failed"] is False and result["changed"] is True, result
    assert puts == [200, 412, 200]  # the other client's write, the module's stale write refused, its write again
    subnet = network.subnets.get(RG, SPOKE_VNET, "snet-app")
    assert subnet.route_table.id.endswith("/routeTables/rt-spoke")
    assert [endpoint.service for endpoint in subnet.service_endpoints] == ["Microsoft.Storage"]
    assert run_module("route_table", args)["writes"] == 0


def test_dns_servers_set_while_ip_forwarding_is_turned_on_survive(run_module, lab, network):
    def set_dns_servers():
        nic = network.network_interfaces.get(RG, NICS[0])
        nic.dns_settings = models.NetworkInterfaceDnsSettings(dns_servers=["10.10.2.53"])
        network.network_interfaces.begin_create_or_update(RG, NICS[0], nic).result()

    args = dict(resource_group=RG, nics=[NICS[0]])
    result, puts = run_with_a_write_in_between(run_module, lab, "nic_ip_forwarding", args, "/networkInterfaces/%s$" % NICS[0], set_dns_servers)
    assert result["failed"] is False and result["changed"] is True, result
    assert puts == [200, 412, 200]
    nic = network.network_interfaces.get(RG, NICS[0])
    assert nic.enable_ip_forwarding is True and nic.dns_settings.dns_servers == ["10.10.2.53"]


def test_a_routing_preference_set_while_branch_to_branch_is_turned_on_survives(run_module, lab, network):
    def set_preference():
        hub = network.virtual_hubs.get(RG, HUB)
        hub.hub_routing_preference = "ASPath"
        network.virtual_hubs.begin_create_or_update(RG, HUB, hub).result()

    args = dict(name=HUB, resource_group=RG, allow_branch_to_branch_traffic=True)
    result, puts = run_with_a_write_in_between(run_module, lab, "route_server", args, "/virtualHubs/%s$" % HUB, set_preference)
    assert result["failed"] is False and result["changed"] is True, result
    assert puts == [200, 412, 200]
    hub = network.virtual_hubs.get(RG, HUB)
    assert hub.allow_branch_to_branch_traffic is True and hub.hub_routing_preference == "ASPath"


SYNC_NSG = dict(name="nsg-sync", resource_group=RG, subnet={"virtual_network": "vnet-hub-weu", "name": "snet-sync"}, nva_addresses=["10.10.3.4", "10.10.3.5"])


def test_a_service_endpoint_added_while_the_sync_nsg_is_associated_survives(run_module, lab, network):
    def add_service_endpoint():
        subnet = network.subnets.get(RG, "vnet-hub-weu", "snet-sync")
        subnet.service_endpoints = [models.ServiceEndpointPropertiesFormat(service="Microsoft.Storage")]
        network.subnets.begin_create_or_update(RG, "vnet-hub-weu", "snet-sync", subnet).result()

    result, puts = run_with_a_write_in_between(run_module, lab, "sync_nsg", SYNC_NSG, "/subnets/snet-sync$", add_service_endpoint)
    assert result["failed"] is False and result["changed"] is True, result
    assert puts == [200, 412, 200]
    subnet = network.subnets.get(RG, "vnet-hub-weu", "snet-sync")
    assert subnet.network_security_group.id.endswith("/networkSecurityGroups/nsg-sync")
    assert [endpoint.service for endpoint in subnet.service_endpoints] == ["Microsoft.Storage"]
    assert run_module("sync_nsg", SYNC_NSG)["writes"] == 0


def test_a_rule_added_while_the_sync_nsg_is_written_survives(run_module, lab, network):
    network.network_security_groups.begin_create_or_update(RG, "nsg-sync", {"location": "westeurope"}).result()

    def add_ssh_rule():
        rule = {"properties": {"protocol": "Tcp", "access": "Allow", "direction": "Inbound", "priority": 300, "sourceAddressPrefix": "10.0.0.0/8",
                               "sourcePortRange": "*", "destinationAddressPrefix": "*", "destinationPortRange": "22"}}
        network.security_rules.begin_create_or_update(RG, "nsg-sync", "ssh", rule).result()

    result, puts = run_with_a_write_in_between(run_module, lab, "sync_nsg", SYNC_NSG, "/networkSecurityGroups/nsg-sync$", add_ssh_rule)
    assert result["failed"] is False and result["changed"] is True, result
    # the test's create of the group; the module's PUT with the etag it read, stale since the rule's write; its PUT again
    assert puts == [201, 412, 200]
    assert sorted(rule.name for rule in network.network_security_groups.get(RG, "nsg-sync").security_rules) == [
        "anycast-sync-allow", "anycast-sync-deny", "ssh"]
    assert run_module("sync_nsg", SYNC_NSG)["writes"] == 0
