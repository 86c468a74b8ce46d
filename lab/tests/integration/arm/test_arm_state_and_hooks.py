"""State file and restart, the request log, seeding, and the hooks the two-region lab uses."""
import json
import os
import subprocess
import sys
import time

import pytest
from azure.core.exceptions import HttpResponseError

from anycast_lab.arm.client import LAB_DIR, RESOURCE_GROUP as RG, EmulatorError, default_topology, route_server_topology


def test_state_survives_a_restart(arm_emulator_factory):
    emu = arm_emulator_factory()
    emu.seed(route_server_topology(peers=[{"name": "nva1", "peer_ip": "10.10.2.4", "peer_asn": 65001}]))
    net = emu.network_client()
    net.route_tables.begin_create_or_update(RG, "rt1", {"location": "westeurope", "properties": {"routes": [
        {"name": "anycast", "properties": {"addressPrefix": "10.250.0.10/32", "nextHopType": "VirtualAppliance", "nextHopIpAddress": "10.10.2.4"}}]}}).result()
    before = net.route_tables.get(RG, "rt1")
    emu.restart()
    # same client, same cached token (signed with the key kept in the state), same CA
    after = net.route_tables.get(RG, "rt1")
    assert (after.id, after.etag, after.routes[0].next_hop_ip_address) == (before.id, before.etag, "10.10.2.4")
    assert [p.name for p in net.virtual_hub_bgp_connections.list(RG, "rs-weu")] == ["nva1"]
    assert net.virtual_hubs.get(RG, "rs-weu").routing_state == "Provisioned"
    with open(emu.state_file, encoding="utf-8") as handle:
        assert emu.rid("routeTables/rt1").lower() in json.load(handle)["resources"]


def test_an_operation_running_at_restart_completes(arm_emulator_factory):
    emu = arm_emulator_factory(op_seconds=1.5)
    net = emu.network_client()
    poller = net.route_tables.begin_create_or_update(RG, "rt1", {"location": "westeurope"})
    emu.restart()
    assert poller.result().provisioning_state == "Succeeded"


def test_request_log_counts_writes_not_reads_tokens_or_admin(arm_emulator, net):
    arm_emulator.clear_requests()
    net.virtual_networks.get(RG, "vnet-hub-weu")
    net.route_tables.begin_create_or_update(RG, "rt1", {"location": "westeurope"}).result()
    arm_emulator.state()  # admin: never logged
    log = arm_emulator.requests()
    assert {entry["kind"] for entry in log} == {"identity", "arm"}
    assert arm_emulator.writes() == 1 and arm_emulator.route_reads() == 0
    put = next(e for e in log if e["method"] == "PUT")
    assert put["path"] == arm_emulator.rid("routeTables/rt1") and put["query"] == "api-version=2026-03-01" and put["status"] == 201
    assert put["client"] == "127.0.0.1" and put["time"].endswith("+00:00")
    assert not [e for e in log if "/_emulator/" in e["path"]]
    # the same entries went to the --log file as JSON lines
    on_disk = arm_emulator.load_log_file()
    assert on_disk[-len(log):] == log


def test_seed_is_atomic_and_names_the_field(arm_emulator):
    before = arm_emulator.state()["resources"]
    bad = {"subscription_id": arm_emulator.subscription_id, "tenant_id": arm_emulator.tenant_id,
           "route_tables": [{"resource_group": RG, "name": "rt-ok"}],
           "network_interfaces": [{"resource_group": RG, "name": "nic-bad", "vnet": "vnet-hub-weu", "subnet": "snet-nva", "private_ip": "10.10.9.9"}]}
    with pytest.raises(EmulatorError, match="PrivateIPAddressNotInSubnet"):
        arm_emulator.seed(bad)
    assert arm_emulator.state()["resources"] == before
    with pytest.raises(EmulatorError, match=r"network_interfaces\[0\]\.vnet is required"):
        arm_emulator.seed({"subscription_id": arm_emulator.subscription_id, "tenant_id": arm_emulator.tenant_id,
                           "network_interfaces": [{"resource_group": RG, "name": "nic-bad", "subnet": "snet-nva"}]})


def test_seed_command_line(arm_emulator, tmp_path):
    topology = dict(default_topology(), route_tables=[{"resource_group": RG, "name": "rt-cli", "routes": [
        {"name": "anycast", "address_prefix": "10.250.0.10/32", "next_hop_type": "VirtualAppliance", "next_hop_ip": "10.10.2.4"}]}])
    (tmp_path / "topology.json").write_text(json.dumps(topology))
    done = subprocess.run([sys.executable, "-m", "anycast_lab.arm", "seed", "--endpoint", arm_emulator.endpoint, "--ca-bundle", arm_emulator.ca_bundle,
                           str(tmp_path / "topology.json")], env=dict(os.environ, PYTHONPATH=LAB_DIR), capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert arm_emulator.rid("routeTables/rt-cli") in json.loads(done.stdout)["created"]
    assert arm_emulator.network_client().routes.get(RG, "rt-cli", "anycast").next_hop_ip_address == "10.10.2.4"


def test_hooks_for_the_lab(arm_emulator_factory, tmp_path):
    changes = tmp_path / "changes.log"
    routes_cmd = tmp_path / "routes.sh"
    routes_cmd.write_text('#!/bin/sh\n'
                          'printf \'{"RouteServiceRole_IN_0": [{"localAddress": "10.10.1.4", "network": "10.250.0.10/32", "nextHop": "%s", '
                          '"sourcePeer": "%s", "origin": "EBgp", "asPath": "65001", "weight": 32768}], "RouteServiceRole_IN_1": []}\' "$3" "$1/$2/$4"\n')
    routes_cmd.chmod(0o755)
    state_cmd = tmp_path / "state.sh"
    state_cmd.write_text('#!/bin/sh\n[ "$1 $2 $3" = "rs-weu nva1 10.10.2.4" ] && echo NotConnected || echo "bad args: $*"\n')
    state_cmd.chmod(0o755)
    emu = arm_emulator_factory(extra_args=["--on-change-cmd", f'echo "$ARM_METHOD $ARM_CHANGED $ARM_STATE" >> {changes}',
                                           "--routes-cmd", str(routes_cmd), "--peer-state-cmd", str(state_cmd)])
    emu.seed(route_server_topology())
    net = emu.network_client()
    peer = net.virtual_hub_bgp_connection.begin_create_or_update(RG, "rs-weu", "nva1", {"properties": {"peerIp": "10.10.2.4", "peerAsn": 65001}}).result()
    assert peer.connection_state == "NotConnected"  # what --peer-state-cmd says (called with the right arguments)
    assert [p.connection_state for p in net.virtual_hub_bgp_connections.list(RG, "rs-weu")] == ["NotConnected"]
    stored = emu.state()["resources"][emu.rid("virtualHubs/rs-weu/bgpConnections/nva1")]["properties"]["connectionState"]
    assert stored == "Connecting"  # without the command nothing would claim a session
    routes = net.virtual_hub_bgp_connections.begin_list_learned_routes(RG, "rs-weu", "nva1").result()
    assert routes["RouteServiceRole_IN_0"][0].next_hop == "10.10.2.4"
    assert routes["RouteServiceRole_IN_0"][0].source_peer == "rs-weu/nva1/learned"
    net.virtual_hub_bgp_connection.begin_delete(RG, "rs-weu", "nva1").result()
    emu.wait_hooks()
    lines = changes.read_text().splitlines()
    peer_id = emu.rid("virtualHubs/rs-weu/bgpConnections/nva1")
    assert lines[-2:] == [f"PUT {peer_id} {emu.state_file}", f"DELETE {peer_id} {emu.state_file}"]
    assert lines[0].startswith("SEED ")


def test_routes_cmd_failure_fails_the_operation(arm_emulator_factory):
    emu = arm_emulator_factory(extra_args=["--routes-cmd", "false"])
    emu.seed(route_server_topology(peers=[{"name": "nva1", "peer_ip": "10.10.2.4", "peer_asn": 65001}]))
    with pytest.raises(HttpResponseError, match="route source command failed"):
        emu.network_client(retry_total=1, retry_backoff_factor=0.05).virtual_hub_bgp_connections.begin_list_advertised_routes(RG, "rs-weu", "nva1").result()


def test_settings_change_timings(arm_emulator, net):
    arm_emulator.settings(op_seconds=1.0)
    started = time.monotonic()
    net.route_tables.begin_create_or_update(RG, "rt1", {"location": "westeurope"}).result()
    assert time.monotonic() - started >= 1.0
    operation = next(iter(arm_emulator.state()["operations"].values()))
    assert operation["done_at"] - operation["started"] == pytest.approx(1.0)
    with pytest.raises(EmulatorError, match="op_seconds"):
        arm_emulator.settings(op_seconds=-1)


def test_seed_raw_arm_bodies(arm_emulator):
    body = {"location": "westeurope", "properties": {"disableBgpRoutePropagation": True, "routes": [
        {"name": "r1", "properties": {"addressPrefix": "10.250.0.10/32", "nextHopType": "VirtualAppliance", "nextHopIpAddress": "10.10.2.5"}}]}}
    arm_emulator.seed({"resources": [{"id": arm_emulator.rid("routeTables/rt-raw"), "body": body}]})
    table = arm_emulator.network_client().route_tables.get(RG, "rt-raw")
    assert table.disable_bgp_route_propagation is True and table.routes[0].next_hop_ip_address == "10.10.2.5"
    assert table.provisioning_state == "Succeeded"
    assert arm_emulator.writes() == 0  # seeding is not an ARM write


def test_reset_restores_the_start_settings(arm_emulator):
    arm_emulator.settings(op_seconds=3.0, on_change_cmd="true")
    arm_emulator.reset()
    settings = arm_emulator.admin("GET", "settings")
    assert settings["op_seconds"] == 0.2 and settings["on_change_cmd"] is None
