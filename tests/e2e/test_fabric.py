"""The lab behaves like the Azure parts it stands for (issue 4, "The lab"): checked through ARM and real BGP/packets.

The region's spare test VM plays the NVA here, so these run before any role or playbook exists.
"""
import subprocess

from conftest import TEST_ASN, TEST_PREFIX, hold_for, onprem_route, wait_for
from anycast_lab.regions import birdconf, plan, routers, routes
from anycast_lab.regions.traffic import requests

WE, NE = plan.REGIONS
HTTP_PORT = 8080
TEST_ADDRESS = TEST_PREFIX.split("/", maxsplit=1)[0]


def fabric_has_route(region, prefix=TEST_PREFIX):
    """The VNet's effective routes (what the Route Server instances programmed) hold the prefix."""
    out = subprocess.run(["ip", "-n", region.fabric_ns, "route", "show", "table", "all", prefix.split("/")[0]],
                         capture_output=True, text=True, check=True).stdout
    return "proto bird" in out


def er_session_since(region):
    """When Route Server instance 0's ExpressRoute session came up (changes if BIRD restarts or resets it)."""
    for line in routers.birdc(routers.speaker_name(region, 0), "show", "protocols", "er").splitlines():
        if line.startswith("er "):
            return line.split()[4]
    return None


def test_speakers_accept_only_peers_registered_through_arm(lab, azure, testvms, network):  # pylint: disable=unused-argument
    vm = testvms["we"]
    hold_for(lambda: any(vm.established().values()), 5, "a Route Server speaker accepted a BGP peer that is not registered in ARM")
    assert not fabric_has_route(WE), "the VNet learned a route from an unregistered peer"
    er_since = er_session_since(WE)

    azure.add_peer(WE, vm.peer_name, WE.testvm_ip, TEST_ASN)
    wait_for(lambda: all(vm.established().values()) and len(vm.established()) == 2, 15, "both instances did not peer after registration")
    learned = network.virtual_hub_bgp_connections.begin_list_learned_routes(WE.resource_group, WE.route_server, vm.peer_name).result()
    for instance, local in enumerate(WE.rs_ips):
        entries = learned[f"RouteServiceRole_IN_{instance}"]
        assert [(e["network"], e["asPath"], e["nextHop"], e["localAddress"]) for e in entries] == [(TEST_PREFIX, str(TEST_ASN), WE.testvm_ip, local)]
    advertised = network.virtual_hub_bgp_connections.begin_list_advertised_routes(WE.resource_group, WE.route_server, vm.peer_name).result()
    networks = {e["network"] for e in advertised["RouteServiceRole_IN_0"]}
    assert {WE.hub_prefix, WE.spoke_prefix, plan.ONPREM_PREFIX} <= networks
    assert network.virtual_hub_bgp_connection.get(WE.resource_group, WE.route_server, vm.peer_name).connection_state == "Connected"
    assert fabric_has_route(WE)

    azure.remove_peer(WE, vm.peer_name)
    wait_for(lambda: not any(vm.established().values()), 15, "the sessions stayed up after the peer was removed from ARM")
    wait_for(lambda: not fabric_has_route(WE), 5, "the VNet kept the removed peer's route")
    assert er_session_since(WE) == er_since, "registering/removing a peer reset the speaker's other sessions (restart instead of reconfigure?)"


def test_branch_to_branch_gates_nva_routes_toward_expressroute(lab, azure, testvms):  # pylint: disable=unused-argument
    azure.set_branch_to_branch(WE, False)  # as seeded; a deployed region has it on
    azure.add_peer(WE, testvms["we"].peer_name, WE.testvm_ip, TEST_ASN)
    wait_for(lambda: fabric_has_route(WE), 15, "the Route Server did not learn the test prefix")
    hold_for(onprem_route, 3, "on-premises learned an NVA route while allowBranchToBranchTraffic is false")

    azure.set_branch_to_branch(WE, True)
    wait_for(onprem_route, 10, "on-premises did not learn the NVA route after branch-to-branch was enabled")

    azure.set_branch_to_branch(WE, False)
    wait_for(lambda: not onprem_route(), 10, "on-premises kept the NVA route after branch-to-branch was disabled")


def test_expressroute_strips_private_asns_and_ecmp_when_paths_tie(lab, azure, testvms):  # pylint: disable=unused-argument
    for region in plan.REGIONS:
        azure.add_peer(region, testvms[region.short].peer_name, region.testvm_ip, TEST_ASN)
        azure.set_branch_to_branch(region, True)
    wait_for(lambda: len(onprem_route()) == 2, 15, "on-premises did not learn the test prefix from both regions")
    assert [r["as_path"] for r in onprem_route()] == [["12076"], ["12076"]], "private ASNs (65515, the NVA's) must be stripped, 12076 added"
    kernel = subprocess.run(["ip", "-n", plan.ONPREM_NS, "route", "show", TEST_PREFIX], capture_output=True, text=True, check=True).stdout
    assert kernel.count("nexthop via") == 2, f"tied paths must give an ECMP route on-premises:\n{kernel}"

    # A private-ASN prepend in northeurope is stripped at the edge: the paths still tie.
    testvms["ne"].reconfigure(prepend=[TEST_ASN] * 3)
    learned = routes.peer_routes(NE.route_server, NE.testvm_ip, "learned")["RouteServiceRole_IN_0"]
    wait_for(lambda: routes.peer_routes(NE.route_server, NE.testvm_ip, "learned")["RouteServiceRole_IN_0"][0]["asPath"] == "-".join([str(TEST_ASN)] * 4),
             10, f"the Route Server did not see the prepended path: {learned}")
    hold_for(lambda: len(onprem_route()) != 2, 2, "a private-ASN prepend changed the on-premises choice (it must be stripped)")
    assert [r["as_path"] for r in onprem_route()] == [["12076"], ["12076"]]

    # A public-ASN prepend survives the edge: on-premises prefers westeurope alone.
    testvms["ne"].reconfigure(prepend=[3356, 3356])
    wait_for(lambda: any(r["as_path"] == ["12076", "3356", "3356"] for r in onprem_route()), 10, "the public-ASN prepend did not reach on-premises")
    best = onprem_route()[0]
    assert best["proto"] == "er_we" and best["as_path"] == ["12076"], f"on-premises should prefer westeurope: {onprem_route()}"
    wait_for(lambda: "nexthop" not in subprocess.run(["ip", "-n", plan.ONPREM_NS, "route", "show", TEST_PREFIX],
                                                     capture_output=True, text=True, check=True).stdout, 5, "ECMP stayed after the paths stopped tying")


def _serve_on_testvm(vm):
    """A web server on the test prefix inside the test VM (a service the tests own); returns the process."""
    # pylint: disable-next=consider-using-with  # stopped by the caller
    return subprocess.Popen(["ip", "netns", "exec", vm.ns, "python3", "-m", "http.server", str(HTTP_PORT), "--bind", TEST_ADDRESS],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_nic_without_ip_forwarding_drops_traffic_for_the_anycast_ip(lab, azure, testvms):
    vm = testvms["we"]
    azure.add_peer(WE, vm.peer_name, WE.testvm_ip, TEST_ASN)
    azure.set_branch_to_branch(WE, True)
    wait_for(onprem_route, 15, "on-premises did not learn the test prefix")
    azure.set_ip_forwarding(WE, f"nic-{WE.short}-testvm", False)  # as seeded, like a fresh VM
    server = _serve_on_testvm(vm)
    try:
        # Forwarding off: the platform drops packets for an address the NIC does not own.
        assert requests(3, address=TEST_ADDRESS, port=HTTP_PORT) == {"failed": 3}
        azure.set_ip_forwarding(WE, f"nic-{WE.short}-testvm", True)
        wait_for(lambda: requests(1, address=TEST_ADDRESS, port=HTTP_PORT)["failed"] == 0, 10, "traffic still dropped with IP forwarding on")
        assert requests(5, address=TEST_ADDRESS, port=HTTP_PORT)["failed"] == 0
        azure.set_ip_forwarding(WE, f"nic-{WE.short}-testvm", False)
        wait_for(lambda: requests(1, address=TEST_ADDRESS, port=HTTP_PORT)["failed"] == 1, 10, "traffic still passes with IP forwarding off again")
    finally:
        server.terminate()
        server.wait()


def test_spoke_routes_by_its_udr_no_snat_return_works_only_with_it(lab, azure, testvms):
    vm = testvms["we"]
    azure.add_peer(WE, vm.peer_name, WE.testvm_ip, TEST_ASN)
    azure.set_branch_to_branch(WE, True)
    azure.set_ip_forwarding(WE, f"nic-{WE.short}-testvm", True)
    azure.set_subnet_route_table(WE, WE.spoke_vnet, "snet-app", None)  # as seeded; a no-SNAT deployment has one
    wait_for(onprem_route, 15, "on-premises did not learn the test prefix")
    # The test VM DNATs to the westeurope backend without SNAT, as an NVA in no-SNAT mode does.
    nat = (f"table ip anl_test {{\n chain pre {{\n  type nat hook prerouting priority -100;\n"
           f"  ip daddr {TEST_ADDRESS} tcp dport {HTTP_PORT} dnat to {WE.backend_ip}:{plan.BACKEND_PORT}\n }}\n}}\n")
    subprocess.run(["ip", "netns", "exec", vm.ns, "nft", "-f", "-"], input=nat, text=True, check=True)
    subprocess.run(["ip", "netns", "exec", vm.ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"], check=True)
    try:
        # Without a UDR the backend answers the client directly (source 10.11.1.4): the client drops it.
        assert requests(3, address=TEST_ADDRESS, port=HTTP_PORT) == {"failed": 3}
        azure.associate_route_table(WE, WE.spoke_vnet, "snet-app", "rt-test-return",
                                    [("onprem", plan.ONPREM_PREFIX, "VirtualAppliance", WE.testvm_ip)])
        wait_for(lambda: requests(1, address=TEST_ADDRESS, port=HTTP_PORT)["failed"] == 0, 10, "no-SNAT return traffic fails with the UDR")
        assert requests(5, address=TEST_ADDRESS, port=HTTP_PORT) == {f"{WE.name} {WE.short}-app": 5}
        # Dissociate (the table stays): the subnet is back on system routes and the return path breaks again.
        azure.set_subnet_route_table(WE, WE.spoke_vnet, "snet-app", None)
        wait_for(lambda: requests(1, address=TEST_ADDRESS, port=HTTP_PORT)["failed"] == 1, 10, "return traffic still works without the UDR")
    finally:
        subprocess.run(["ip", "netns", "exec", vm.ns, "nft", "delete", "table", "ip", "anl_test"], check=False)


def test_speaker_kernel_tables_are_the_vnet_routes(lab):  # pylint: disable=unused-argument
    """Sanity of the wiring the tests above rely on: both instances program their own table, consulted in order."""
    rules = subprocess.run(["ip", "-n", WE.fabric_ns, "rule"], capture_output=True, text=True, check=True).stdout
    for instance in (0, 1):
        assert f"lookup {birdconf.kernel_table(instance)}" in rules


def test_arm_and_hosts_follow_the_lab_size(lab, network):
    """The size the lab recorded is what ARM, the hosts and the fabric have: one NIC, host and fabric port per NVA."""
    size = lab.size()
    assert size == plan.lab_nvas() and all(plan.MIN_NVAS <= count <= plan.MAX_NVAS for count in size.values())
    topo = lab.topology()
    for region in plan.regions(size):
        nics = sorted(nic.name for nic in network.network_interfaces.list(region.resource_group) if "-nva" in nic.name)
        assert nics == sorted(f"nic-{host}" for host, *_rest in region.nvas)
        assert sorted(node.name for node in topo.spec.hosts if region.name in node.groups) == sorted(host for host, *_rest in region.nvas)
        ports = subprocess.run(["ip", "-n", region.fabric_ns, "-br", "link"], capture_output=True, text=True, check=True).stdout
        assert all(f"{nic.port}@" in ports for nic in region.nics), ports
