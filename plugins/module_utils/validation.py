# -*- coding: utf-8 -*-
# Copyright: (c) 2026, anycast.nva maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Input checks shared by the modules. Pure functions: no Azure, no Ansible.

Every check raises AnycastError naming the option at fault, so a module can run
all of them before its first call to Azure that writes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import re

from ansible_collections.anycast.nva.plugins.module_utils.errors import AnycastError

# ASNs Azure reserves for itself; an NVA peering with Route Server may not use them.
RESERVED_ASN_RANGES = (
    (8074, 8075),
    (12076, 12076),
    (23456, 23456),
    (64496, 64511),
    (65515, 65515),
    (65517, 65520),
    (65535, 65551),
)
MAX_ASN = 4294967295

# Azure resource names: 1-80 characters, start with a letter or digit, end with a
# letter, digit or underscore, and contain only letters, digits, _ . and -.
_NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,78}[A-Za-z0-9_])?$")


def _text(value):
    # ipaddress needs text; Ansible may hand us other scalars.
    return value if isinstance(value, str) else str(value)


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
    return network


def asn(value, field):
    """A BGP ASN an NVA may use with Route Server (not 0, not above 32 bits, not reserved by Azure)."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise AnycastError(field, "%r is not an ASN (an integer from 1 to %d)" % (value, MAX_ASN)) from None
    if number < 1 or number > MAX_ASN:
        raise AnycastError(field, "ASN %d is out of range (1 to %d)" % (number, MAX_ASN))
    for low, high in RESERVED_ASN_RANGES:
        if low <= number <= high:
            span = "%d" % low if low == high else "%d-%d" % (low, high)
            raise AnycastError(field, "ASN %d is reserved by Azure (%s) and cannot peer with Route Server" % (number, span))
    return number


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
