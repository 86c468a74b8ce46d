"""Pure parts of sync_nsg: its input checks, the rules it wants, how it reads Azure's rules, and the other rules it refuses."""
import ipaddress

import pytest

from ansible_collections.anycast.nva.plugins.module_utils import sync_nsg
from ansible_collections.anycast.nva.plugins.module_utils.errors import AnycastError

NVAS = [ipaddress.IPv4Address("10.10.3.4"), ipaddress.IPv4Address("10.10.3.5")]


@pytest.fixture
def nsg_params(module_params):
    base = dict(name="nsg-sync", resource_group="rg", subnet={"virtual_network": "vnet", "name": "snet-sync", "resource_group": None},
                nva_addresses=["10.10.3.5", "10.10.3.4"])
    return lambda **given: module_params(sync_nsg.ARGUMENT_SPEC, **dict(base, **given))


def azure_rule(name, priority, access="Allow", protocol="Udp", port="3780", source="VirtualNetwork", direction="Inbound", **extra):
    """A security rule as ARM returns it (both the single and the list fields)."""
    props = {"priority": priority, "access": access, "protocol": protocol, "direction": direction, "sourcePortRange": "*", "sourcePortRanges": [],
             "destinationPortRange": port, "destinationPortRanges": [], "sourceAddressPrefix": source, "sourceAddressPrefixes": [],
             "destinationAddressPrefix": "*", "destinationAddressPrefixes": []}
    props.update(extra)
    return {"name": name, "properties": props}


def nsg(*rules):
    return {"name": "nsg-sync", "location": "westeurope", "properties": {"securityRules": list(rules)}}


def test_good_input_gives_the_addresses_parsed(nsg_params):
    assert sync_nsg.validate(nsg_params()) == [NVAS[1], NVAS[0]]


@pytest.mark.parametrize("given, field", [
    (dict(nva_addresses=["10.10.3.4", "10.10.3.4"]), "nva_addresses[1]"),
    (dict(nva_addresses=["10.10.3"]), "nva_addresses[0]"),
    (dict(nva_addresses=[]), "nva_addresses"),
    (dict(port=70000), "port"),
    (dict(priority=4096), "priority"),
    (dict(priority=50), "priority"),
    (dict(name="-bad"), "name"),
    (dict(subnet={"virtual_network": "vnet", "name": "GatewaySubnet", "resource_group": None}), "subnet.name"),
])
def test_bad_input_is_refused_naming_the_option(nsg_params, given, field):
    with pytest.raises(AnycastError) as caught:
        sync_nsg.validate(nsg_params(**given))
    assert caught.value.field == field


def test_the_wanted_rules_admit_the_nvas_then_deny_the_port():
    allow, deny = sync_nsg.wanted_rules(list(reversed(NVAS)), 3780, 200)
    assert (allow["name"], allow["priority"], allow["access"], allow["source"], allow["destination"]) == \
        ("anycast-sync-allow", 200, "Allow", ["10.10.3.4", "10.10.3.5"], ["10.10.3.4", "10.10.3.5"])
    assert (deny["name"], deny["priority"], deny["access"], deny["source"], deny["destination"]) == ("anycast-sync-deny", 201, "Deny", ["*"], ["*"])
    assert allow["protocol"] == deny["protocol"] == "Udp" and allow["destination_ports"] == deny["destination_ports"] == ["3780"]


def test_azure_rules_read_the_same_whichever_field_holds_the_prefixes():
    wanted = sync_nsg.wanted_rules(NVAS, 3780, 200)
    as_list = azure_rule("anycast-sync-allow", 200, source=None, sourceAddressPrefixes=["10.10.3.5", "10.10.3.4/32"],
                         destinationAddressPrefix=None, destinationAddressPrefixes=["10.10.3.4", "10.10.3.5"])
    deny = azure_rule("anycast-sync-deny", 201, access="Deny", source="*")
    # Azure has them as wanted (the other rule kept as read): no PUT
    assert sync_nsg.nsg_change("westeurope", wanted, nsg(as_list, deny, azure_rule("ssh", 300, protocol="Tcp", port="22"))) is None
    # a missing rule or another port: the whole group, the other rule kept
    body = sync_nsg.nsg_change("westeurope", wanted, nsg(as_list, azure_rule("ssh", 300, protocol="Tcp", port="22")))
    names = [rule["name"] for rule in body.as_dict()["properties"]["securityRules"]]
    assert names == ["ssh", "anycast-sync-allow", "anycast-sync-deny"]


@pytest.mark.parametrize("other, refused", [
    (azure_rule("at-priority", 200, protocol="Tcp", port="443"), True),
    (azure_rule("at-priority-plus-one", 201, access="Deny", port="22"), True),
    (azure_rule("outbound-at-priority", 200, direction="Outbound"), False),
    (azure_rule("open-before", 150), True),
    (azure_rule("open-range-before", 150, protocol="*", port="3000-4000"), True),
    (azure_rule("other-port-before", 150, port="53"), False),
    (azure_rule("tcp-before", 150, protocol="Tcp"), False),
    (azure_rule("deny-before", 150, access="Deny"), False),
    (azure_rule("nva-only-before", 150, source="10.10.3.4/32"), False),
    (azure_rule("open-after", 300), False),
])
def test_other_rules_that_clash_or_let_the_port_in_first_are_refused(other, refused):
    if refused:
        with pytest.raises(AnycastError) as caught:
            sync_nsg.check_other_rules(nsg(other), NVAS, 3780, 200)
        assert caught.value.field == "priority" and other["name"] in caught.value.message
    else:
        sync_nsg.check_other_rules(nsg(other), NVAS, 3780, 200)
