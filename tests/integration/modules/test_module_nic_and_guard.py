"""anycast.nva.nic_ip_forwarding and anycast.nva.anycast_prefix_guard."""
from anycast_lab.playbook_runner import HUB_VNET, NICS, RG, SPOKE_VNET


def forwarding(network):
    return [network.network_interfaces.get(RG, nic).enable_ip_forwarding for nic in NICS]


def test_nic_ip_forwarding_lifecycle(run_module, network):
    assert forwarding(network) == [False, False]

    checked = run_module("nic_ip_forwarding", dict(resource_group=RG, nics=list(NICS)), check=True)
    assert checked["changed"] is True and checked["writes"] == 0
    assert checked["diff"] == {"before": {"ip_forwarding": {NICS[0]: False, NICS[1]: False}}, "after": {"ip_forwarding": {NICS[0]: True, NICS[1]: True}}}
    assert forwarding(network) == [False, False]

    one = run_module("nic_ip_forwarding", dict(resource_group=RG, nic=NICS[0]))
    assert one["changed"] is True and one["writes"] == 1 and one["changed_nics"] == [NICS[0]]
    assert forwarding(network) == [True, False]

    both = run_module("nic_ip_forwarding", dict(resource_group=RG, nics=list(NICS)))
    assert both["changed"] is True and both["writes"] == 1 and both["changed_nics"] == [NICS[1]]
    assert forwarding(network) == [True, True]
    # the NIC keeps its address: only the flag changed
    assert network.network_interfaces.get(RG, NICS[0]).ip_configurations[0].private_ip_address == "10.10.2.4"

    again = run_module("nic_ip_forwarding", dict(resource_group=RG, nics=list(NICS)))
    assert again["changed"] is False and again["writes"] == 0

    off = run_module("nic_ip_forwarding", dict(resource_group=RG, nics=list(NICS), enabled=False))
    assert off["changed"] is True and off["writes"] == 2
    assert forwarding(network) == [False, False]
    again = run_module("nic_ip_forwarding", dict(resource_group=RG, nics=list(NICS), enabled=False))
    assert again["changed"] is False and again["writes"] == 0


def test_prefix_guard_passes_a_free_32_and_says_what_it_checked(run_module):
    ok = run_module("anycast_prefix_guard", dict(prefix="10.250.0.10", resource_group=RG, virtual_networks=[{"name": HUB_VNET}, {"name": SPOKE_VNET}],
                                                 on_premises_prefixes=["172.16.0.0/16"]))
    assert ok["failed"] is False and ok["changed"] is False and ok["writes"] == 0, ok
    assert ok["prefix"] == "10.250.0.10/32"
    assert ok["virtual_networks"] == [{"name": HUB_VNET, "resource_group": RG, "address_prefixes": ["10.10.0.0/16"]},
                                      {"name": SPOKE_VNET, "resource_group": RG, "address_prefixes": ["10.11.0.0/16"]}]
    assert ok["on_premises_prefixes"] == ["172.16.0.0/16"]
