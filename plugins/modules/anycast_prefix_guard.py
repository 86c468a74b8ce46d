#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, anycast.nva maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: anycast_prefix_guard
short_description: Refuse an anycast prefix that is not a /32 or overlaps a VNet or on-premises
version_added: 0.1.0
description:
  - A guard rail to run before any task that writes. Read-only; it never changes anything.
  - Fails when O(prefix) is not a valid IPv4 /32, is not an ordinary unicast address (unspecified, broadcast, loopback,
    multicast, link-local, 240.0.0.0/4, or Azure's platform addresses 168.63.129.16 and 169.254.169.254), overlaps the
    address space of one of O(virtual_networks) (read from Azure;
    VNet system routes win over a more specific BGP route, so the anycast IP would never leave the VNet), or overlaps one of
    O(on_premises_prefixes).
  - Returns what it checked.
author:
  - anycast.nva maintainers (@anycast-nva)
options:
  prefix:
    description: The anycast service address, V(10.250.0.10/32) or V(10.250.0.10).
    type: str
    required: true
  virtual_networks:
    description: The hub and spoke VNets of every region that must not contain the prefix.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: VNet name.
        type: str
        required: true
      resource_group:
        description: Resource group of the VNet; defaults to O(resource_group).
        type: str
  resource_group:
    description: Default resource group of O(virtual_networks).
    type: str
  on_premises_prefixes:
    description: On-premises prefixes (IPv4 CIDR) that must not contain the prefix.
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - anycast.nva.azure
  - anycast.nva.azure.read_only
  - ansible.builtin.action_common_attributes
"""

EXAMPLES = r"""
- name: Check the anycast address before anything is written
  anycast.nva.anycast_prefix_guard:
    prefix: 10.250.0.10/32
    resource_group: rg-westeurope
    virtual_networks:
      - name: vnet-hub
      - name: vnet-spoke
      - name: vnet-hub
        resource_group: rg-northeurope
    on_premises_prefixes:
      - 172.16.0.0/16
"""

RETURN = r"""
prefix:
  description: The prefix checked, normalised.
  returned: success
  type: str
  sample: 10.250.0.10/32
virtual_networks:
  description: The VNets checked with the address space read from Azure.
  returned: success
  type: list
  elements: dict
  sample: [{"name": "vnet-hub", "resource_group": "rg-westeurope", "address_prefixes": ["10.10.0.0/16"]}]
on_premises_prefixes:
  description: The on-premises prefixes checked, normalised.
  returned: success
  type: list
  elements: str
error:
  description: On failure, the option at fault and Azure's error code (C(PrefixOverlap) for an overlap), message and HTTP status.
  returned: failure
  type: dict
"""

from ansible_collections.anycast.nva.plugins.module_utils import anycast_prefix_guard
from ansible_collections.anycast.nva.plugins.module_utils.module_runner import run_module


def main():
    run_module(anycast_prefix_guard.ARGUMENT_SPEC, anycast_prefix_guard.check)


if __name__ == "__main__":
    main()
