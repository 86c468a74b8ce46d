"""The Jinja tests and filter the roles' preflight uses: the modules' rules (module_utils/validation.py), not copies."""
import itertools
import re

import pytest

from ansible_collections.anycast.nva.plugins.filter import validation as filters
from ansible_collections.anycast.nva.plugins.module_utils import validation
from ansible_collections.anycast.nva.plugins.module_utils.errors import AnycastError
from ansible_collections.anycast.nva.plugins.test import validation as tests

# What the roles' vars/main.yml checked addresses with before the tests existed.
OLD_ROLE_IPV4_REGEX = r"((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
OCTETS = ["0", "00", "01", "9", "10", "099", "100", "199", "249", "255", "256", "300", "1000", "-1", "a", "", " 1"]


def test_the_plugins_are_the_module_utils_functions():
    assert tests.TestModule().tests() == {
        "ipv4_address": tests.ipv4_address, "ipv4_prefix": tests.ipv4_prefix,
        "usable_asn": tests.usable_asn, "private_asn": tests.private_asn,
    }
    assert filters.FilterModule().filters() == {"asn_error": filters.asn_error}


def test_ipv4_address_refuses_what_the_roles_regex_refused():
    # Every dotted quad built from these octets: the test agrees with the old regex on each.
    for octets in itertools.product(OCTETS, repeat=2):
        text = "10.%s.%s.4" % octets
        assert tests.ipv4_address(text) == bool(re.fullmatch(OLD_ROLE_IPV4_REGEX, text)), text


@pytest.mark.parametrize("value", ["10.10.2.4", "0.0.0.0", "255.255.255.255"])
def test_ipv4_addresses(value):
    assert tests.ipv4_address(value)


# The regex accepted "10.10.2.4\n" (re.match's $ matches before a final newline); the test does not.
@pytest.mark.parametrize("value", ["nva1", "10.10.2", "10.10.2.4.5", "10.10.2.4/32", "fe80::1", " 10.10.2.4", "10.10.2.4\n",
                                   "", None, 167772161, ["10.10.2.4"]])
def test_not_ipv4_addresses(value):
    assert not tests.ipv4_address(value)


@pytest.mark.parametrize("value, prefixlen, expected", [
    ("10.250.0.10/32", 32, True),
    ("10.250.0.10/32", None, True),
    ("10.1.0.0/16", None, True),
    ("10.1.0.0/16", 32, False),
    ("10.250.0.0/24", 32, False),
    ("10.1.2.3/16", None, False),         # host bits set
    ("10.250.0.10", 32, False),           # no length written
    ("10.250.0.300/32", 32, False),
    ("10.250.0.10/255.255.255.255", 32, False),
    ("10.250.0.10/032", 32, False),
    (" 10.250.0.10/32", 32, False),
    ("fd00::1/128", None, False),
    (None, 32, False),
])
def test_ipv4_prefix(value, prefixlen, expected):
    assert tests.ipv4_prefix(value, prefixlen) is expected


@pytest.mark.parametrize("value", [8074, 8075, 12076, 23456, 64496, 64511, 65515, 65517, 65520, 65535, 65551, 4294967295])
def test_reserved_asns_are_not_usable(value):
    assert not tests.usable_asn(value)
    assert filters.asn_error(value).startswith("ASN %d is reserved by Azure or IANA" % value)


@pytest.mark.parametrize("value, words", [(0, "out of range"), (4294967296, "out of range"), ("abc", "not an ASN"), (None, "not an ASN")])
def test_invalid_asns_are_not_usable(value, words):
    assert not tests.usable_asn(value)
    assert words in filters.asn_error(value)


@pytest.mark.parametrize("value", [1, 65001, 65516, 65521, 64495, 64512, 65552, 4294967294, "65001"])
def test_usable_asns(value):
    assert tests.usable_asn(value)
    assert filters.asn_error(value) == ""


@pytest.mark.parametrize("value", [65515, 0, "abc", 4294967295])
def test_the_role_message_is_the_module_message(value):
    with pytest.raises(AnycastError) as err:
        validation.asn(value, "peer_asn")
    assert str(err.value) == "peer_asn: " + filters.asn_error(value)


@pytest.mark.parametrize("value, expected", [
    (64512, True), (65001, True), (65534, True), (4200000000, True), (4294967294, True), ("65001", True),
    (64511, False), (65535, False), (12076, False), (4199999999, False), (4294967295, False), ("abc", False), (None, False),
])
def test_private_asn(value, expected):
    assert tests.private_asn(value) is expected
