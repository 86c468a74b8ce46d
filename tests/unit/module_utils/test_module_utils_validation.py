"""Input checks: each bad value is refused with the option's name; good values pass and are normalised."""
import pytest

from ansible_collections.anycast.nva.plugins.module_utils import validation
from ansible_collections.anycast.nva.plugins.module_utils.errors import AnycastError


@pytest.mark.parametrize("value", [8074, 8075, 12076, 23456, 64496, 64500, 64511, 65515, 65517, 65520, 65535, 65540, 65551, 4294967295])
def test_reserved_asns_are_refused(value):
    with pytest.raises(AnycastError) as err:
        validation.asn(value, "peer_asn")
    assert err.value.field == "peer_asn"
    assert "reserved by Azure or IANA" in str(err.value)


@pytest.mark.parametrize("value", [0, -1, 4294967296, "abc", None])
def test_out_of_range_asns_are_refused(value):
    with pytest.raises(AnycastError) as err:
        validation.asn(value, "peer_asn")
    assert str(err.value).startswith("peer_asn: ")


@pytest.mark.parametrize("value", [1, 65001, 65516, 65521, 64495, 64512, 65552, 4294967294, "65001"])
def test_usable_asns_pass(value):
    assert validation.asn(value, "peer_asn") == int(value)


@pytest.mark.parametrize("value", ["10.0.0.256", "10.0.0", "fe80::1", "", "10.0.0.1/32", "abc"])
def test_bad_ipv4_addresses(value):
    with pytest.raises(AnycastError) as err:
        validation.ipv4_address(value, "peer_ip")
    assert err.value.field == "peer_ip"


def test_ipv4_address_is_normalised():
    assert str(validation.ipv4_address(" 10.10.2.4 ", "peer_ip")) == "10.10.2.4"


@pytest.mark.parametrize("value", ["10.1.2.3/16", "10.0.0.0/33", "10.0.0.0", "banana/8", "fe80::/64"])
def test_bad_cidrs(value):
    with pytest.raises(AnycastError) as err:
        validation.ipv4_network(value, "routes[0].address_prefix")
    assert err.value.field == "routes[0].address_prefix"


def test_cidr_is_normalised():
    assert str(validation.ipv4_network("10.1.0.0/16", "x")) == "10.1.0.0/16"


@pytest.mark.parametrize("value, expected", [("10.250.0.10", "10.250.0.10/32"), ("10.250.0.10/32", "10.250.0.10/32")])
def test_anycast_prefix_accepts_a_single_address(value, expected):
    assert str(validation.anycast_prefix(value, "prefix")) == expected


@pytest.mark.parametrize("value, words", [
    ("10.250.0.0/24", "/24"), ("10.250.0.11/31", "is not a valid"), ("10.250.0.10/31", "/31"), ("10.250.0.300", "not a valid"),
])
def test_anycast_prefix_must_be_a_32(value, words):
    with pytest.raises(AnycastError) as err:
        validation.anycast_prefix(value, "prefix")
    assert err.value.field == "prefix"
    assert words in err.value.message


@pytest.mark.parametrize("value", ["rt-1", "a", "route_1.x", "A" * 80, "x_"])
def test_good_resource_names(value):
    assert validation.resource_name(value, "name") == value


@pytest.mark.parametrize("value", ["", "-rt", "rt-", "rt.", "a b", "A" * 81, "rt/1", None, 5])
def test_bad_resource_names(value):
    with pytest.raises(AnycastError) as err:
        validation.resource_name(value, "routes[3].name")
    assert str(err.value).startswith("routes[3].name: ")


def test_overlaps_finds_the_vnet_that_contains_the_prefix_and_ignores_ipv6():
    prefix = validation.anycast_prefix("10.10.5.5", "prefix")
    found = validation.overlaps(prefix, [("hub", "10.10.0.0/16"), ("spoke", "10.11.0.0/16"), ("v6", "fd00::/8")])
    assert found == [("hub", "10.10.0.0/16")]
    assert validation.overlaps(validation.anycast_prefix("10.250.0.10", "prefix"), [("hub", "10.10.0.0/16")]) == []


def test_contained_in_any():
    address = validation.ipv4_address("10.10.2.4", "peer_ip")
    assert validation.contained_in_any(address, ["10.0.0.0/16", "10.10.0.0/16"])
    assert not validation.contained_in_any(address, ["10.11.0.0/16", "fd00::/8"])


@pytest.mark.parametrize("value, words", [
    ("0.0.0.0", "the unspecified address"), ("255.255.255.255/32", "the broadcast address"), ("127.0.0.1", "a loopback address"),
    ("224.0.0.5", "a multicast address"), ("169.254.10.10", "a link-local address"), ("240.0.0.1", "a reserved address"),
    ("168.63.129.16", "Azure reserves"), ("169.254.169.254/32", "Azure reserves"),
])
def test_anycast_prefix_must_be_an_ordinary_unicast_address(value, words):
    with pytest.raises(AnycastError) as err:
        validation.anycast_prefix(value, "prefix")
    assert err.value.field == "prefix" and words in err.value.message
