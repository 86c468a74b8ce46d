# -*- coding: utf-8 -*-
# Copyright: (c) 2026, anycast.nva maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja tests for the roles' preflight: the rules the modules use (module_utils/validation.py).

Documentation: the YAML file beside this one named after each test.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.anycast.nva.plugins.module_utils import validation


def ipv4_address(value):
    """anycast.nva.ipv4_address: an IPv4 address written as a dotted quad."""
    return validation.is_ipv4_address(value)


def ipv4_prefix(value, prefixlen=None):
    """anycast.nva.ipv4_prefix: an IPv4 prefix in CIDR notation without host bits, optionally of one length."""
    return validation.is_ipv4_prefix(value, prefixlen)


def usable_asn(value):
    """anycast.nva.usable_asn: an ASN an NVA may use with Route Server (anycast.nva.asn_error says why not)."""
    return validation.asn_error(value) is None


def private_asn(value):
    """anycast.nva.private_asn: a private ASN, which ExpressRoute's edge strips from the AS path."""
    return validation.is_private_asn(value)


class TestModule(object):
    """The collection's Jinja tests."""

    def tests(self):
        return {
            "ipv4_address": ipv4_address,
            "ipv4_prefix": ipv4_prefix,
            "usable_asn": usable_asn,
            "private_asn": private_asn,
        }
