# -*- coding: utf-8 -*-
# Copyright: (c) 2026, anycast.nva maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Input checks shared by the modules and the roles. Pure functions: no Azure, no Ansible.

The module checks raise AnycastError naming the option at fault, so a module can run
all of them before its first call to Azure that writes. The roles reach the same rules
through the collection's test and filter plugins (plugins/test/validation.py,
plugins/filter/validation.py), which call the predicates below.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import re

from ansible_collections.anycast.nva.plugins.module_utils.errors import AnycastError

# ASNs Azure or IANA reserve; an NVA may neither peer with Route Server from one nor prepend one.
RESERVED_ASN_RANGES = (
    (8074, 8075),
    (12076, 12076),
    (23456, 23456),
    (64496, 64511),
    (65515, 65515),
    (65517, 65520),
    (65535, 65551),
    (4294967295, 4294967295),
)
MAX_ASN = 4294967295
# Private ASNs (RFC 6996): ExpressRoute's edge strips them from the AS path.
PRIVATE_ASN_RANGES = (
    (64512, 65534),
    (4200000000, 4294967294),
)

# Azure resource names: 1-80 characters, start with a letter or digit, end with a
# letter, digit or underscore, and contain only letters, digits, _ . and -.
_NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,78}[A-Za-z0-9_])?$")


def _text(value):
    # ipaddress needs text; Ansible may hand us other scalars.
    return value if isinstance(value, str) else str(value)


def _in_ranges(number, ranges):
    """The (low, high) of ranges that holds number, or None."""
    for low, high in ranges:
        if low <= number <= high:
            return low, high
    return None


def is_ipv4_address(value):
    """True for an IPv4 address written exactly as a dotted quad ('10.0.0.1'; not ' 10.0.0.1', '010.0.0.1')."""
    text = _text(value)
    try:
        return str(ipaddress.IPv4Address(text)) == text
    except ValueError:
        return False


def is_ipv4_prefix(value, prefixlen=None):
    """True for an IPv4 prefix written exactly in CIDR notation without host bits ('10.1.0.0/16'),
    of length prefixlen when given ('10.250.0.10/32' with 32)."""
    text = _text(value)
    try:
        network = ipaddress.IPv4Network(text, strict=True)
    except ValueError:
        return False
    return str(network) == text and (prefixlen is None or network.prefixlen == int(prefixlen))


def ipv4_address(value, field):
    """A dotted-quad IPv4 address, returned as ipaddress.IPv4Address."""
    try:
        return ipaddress.IPv4Address(_text(value).strip())
    except ValueError:
        raise AnycastError(field, "%r is not a valid IPv4 address" % (value,)) from None


def ipv4_network(value, field):
    """An IPv4 CIDR prefix without host bits (10.1.0.0/16, not 10.1.2.3/16)."""
    text = _text(value).strip()
    if "/" not in text:
        raise AnycastError(field, "%r is not an IPv4 prefix in CIDR notation (for example 10.1.0.0/16)" % (value,))
    try:
        return ipaddress.IPv4Network(text, strict=True)
    except ValueError as exc:
        raise AnycastError(field, "%r is not a valid IPv4 CIDR prefix (%s)" % (value, exc)) from None


def anycast_prefix(value, field):
    """The anycast service address: an IPv4 /32 ('10.250.0.10' or '10.250.0.10/32')."""
    text = _text(value).strip()
    if "/" not in text:
        text += "/32"
    try:
        network = ipaddress.IPv4Network(text, strict=True)
    except ValueError:
        raise AnycastError(field, "%r is not a valid IPv4 /32 prefix" % (value,)) from None
    if network.prefixlen != 32:
        raise AnycastError(field, "%r is a /%d; an anycast prefix must be a single address (/32)" % (value, network.prefixlen))
    kind = _special_address(network.network_address)
    if kind:
        raise AnycastError(field, "%s is %s; an anycast prefix must be a unicast address that Azure routes" % (network, kind))
    return network


# Addresses Azure keeps for its platform: the DNS, DHCP and health-probe virtual IP, and the instance metadata service.
AZURE_RESERVED_ADDRESSES = ("168.63.129.16", "169.254.169.254")


def _special_address(address):
    """What kind of address no anycast service can use (text), or None for an ordinary unicast address."""
    if str(address) in AZURE_RESERVED_ADDRESSES:
        return "an address Azure reserves for its platform services"
    for kind, test in (("the unspecified address", address.is_unspecified), ("the broadcast address", address == ipaddress.IPv4Address("255.255.255.255")),
                       ("a loopback address", address.is_loopback), ("a multicast address", address.is_multicast),
                       ("a link-local address", address.is_link_local), ("a reserved address (240.0.0.0/4)", address.is_reserved)):
        if test:
            return kind
    return None


def asn_error(value):
    """Why value is not an ASN an NVA may use with Route Server (text), or None when it is one.

    An ASN is an integer from 1 to 2^32-1 that Azure or IANA do not reserve (RESERVED_ASN_RANGES).
    """
    try:
        number = int(value)
    except (TypeError, ValueError):
        return "%r is not an ASN (an integer from 1 to %d)" % (value, MAX_ASN)
    if number < 1 or number > MAX_ASN:
        return "ASN %d is out of range (1 to %d)" % (number, MAX_ASN)
    reserved = _in_ranges(number, RESERVED_ASN_RANGES)
    if reserved:
        low, high = reserved
        span = "%d" % low if low == high else "%d-%d" % (low, high)
        return "ASN %d is reserved by Azure or IANA (%s); an NVA cannot use it with Route Server" % (number, span)
    return None


def asn(value, field):
    """A BGP ASN an NVA may use with Route Server (asn_error() has the rule), returned as int."""
    problem = asn_error(value)
    if problem:
        raise AnycastError(field, problem)
    return int(value)


def is_private_asn(value):
    """True for a private ASN (RFC 6996), which ExpressRoute's edge strips from the AS path."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return False
    return _in_ranges(number, PRIVATE_ASN_RANGES) is not None


def resource_name(value, field):
    """An Azure resource name (route, route table, peer, ...)."""
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise AnycastError(field, "%r is not a valid Azure resource name (1-80 characters: letters, digits, '_', '.', '-'; "
                                  "starts with a letter or digit, ends with a letter, digit or '_')" % (value,))
    return value


def overlaps(network, labelled_prefixes):
    """The (label, prefix) pairs whose prefix overlaps network; prefixes are text CIDRs or ipaddress networks."""
    return [(label, prefix) for label, prefix in labelled_prefixes if _overlap(ipaddress.ip_network(prefix, strict=False), network)]


def _overlap(one, other):
    # VNets may carry IPv6 space too; an IPv6 prefix never overlaps an IPv4 one.
    return one.version == other.version and one.overlaps(other)


def contained_in_any(address, prefixes):
    """True when address (IPv4Address) falls inside one of the text CIDR prefixes."""
    return any(address in ipaddress.ip_network(prefix, strict=False) for prefix in prefixes)
