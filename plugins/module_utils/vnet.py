# -*- coding: utf-8 -*-
# Copyright: (c) 2026, anycast.nva maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Virtual network lookups shared by the peer and prefix-guard modules."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.anycast.nva.plugins.module_utils.arm import parse_id, props


def address_prefixes(session, field, resource_group, name):
    """The address space of a VNet (read from Azure); a missing VNet is an error naming field."""
    vnet = session.read(field, session.network.virtual_networks.get, resource_group, name)
    return list((props(vnet).get("addressSpace") or {}).get("addressPrefixes") or [])


def vnet_of_subnet(subnet_id):
    """(resource_group, vnet name) of a subnet id."""
    parts = parse_id(subnet_id)
    return parts.get("resource_group"), parts.get("virtualnetworks")
