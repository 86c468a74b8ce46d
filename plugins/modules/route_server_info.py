#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, anycast.nva maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: route_server_info
short_description: Read an Azure Route Server, its BGP peers and optionally their routes
version_added: 0.1.0
description:
  - Returns a Route Server (ARM C(Microsoft.Network/virtualHubs)) by name and resource group, ASN, the two instance IPs,
    branch-to-branch, hub routing preference, provisioning and routing state, and its BGP peers with their connection state.
  - With O(include_routes=true), also each peer's learned and advertised routes, keyed per Route Server instance
    (C(RouteServiceRole_IN_0), C(RouteServiceRole_IN_1)). Azure computes them in a long-running operation per peer and direction.
  - Fails, naming the option, when the Route Server does not exist.
author:
  - anycast.nva maintainers (@anycast-nva)
options:
  include_routes:
    description: Also return each peer's learned and advertised routes.
    type: bool
    default: false
extends_documentation_fragment:
  - anycast.nva.route_server
  - anycast.nva.route_server.name
  - anycast.nva.azure
  - anycast.nva.azure.read_only
  - ansible.builtin.action_common_attributes
"""

EXAMPLES = r"""
- name: Read the region's Route Server and what each NVA announces
  anycast.nva.route_server_info:
    resource_group: rg-westeurope
    name: rs-westeurope
    include_routes: true
  register: rs

- name: Every NVA must announce the anycast /32 to both instances
  ansible.builtin.assert:
    that: >-
      rs.route_server.peers | map(attribute='learned_routes') | map('dict2items') | flatten
      | map(attribute='value') | flatten | selectattr('network', 'equalto', '10.250.0.10/32') | list | length > 0
"""

RETURN = r"""
route_server:
  description: The Route Server.
  returned: success
  type: dict
  contains:
    name:
      description: Name.
      type: str
    id:
      description: ARM id.
      type: str
    location:
      description: Azure region.
      type: str
    asn:
      description: The Route Server's ASN (65515).
      type: int
      sample: 65515
    instance_ips:
      description: Addresses of the two Route Server instances; NVAs peer with both.
      type: list
      elements: str
      sample: ["10.10.1.4", "10.10.1.5"]
    allow_branch_to_branch_traffic:
      description: Whether routes are exchanged with ExpressRoute / VPN gateways (needed to reach on-premises).
      type: bool
    hub_routing_preference:
      description: ExpressRoute, VpnGateway or ASPath.
      type: str
    sku:
      description: Hub SKU.
      type: str
    provisioning_state:
      description: ARM provisioning state.
      type: str
    routing_state:
      description: Routing state; peers can be added once it is C(Provisioned).
      type: str
    peers:
      description: BGP peers, sorted by name.
      type: list
      elements: dict
      contains:
        name:
          description: Peer (connection) name.
          type: str
        id:
          description: ARM id.
          type: str
        peer_ip:
          description: NVA address.
          type: str
        peer_asn:
          description: NVA ASN.
          type: int
        connection_state:
          description: BGP session state as Azure reports it (Connected, Connecting, NotConnected, Unknown).
          type: str
        provisioning_state:
          description: ARM provisioning state.
          type: str
        learned_routes:
          description: With O(include_routes), routes the Route Server learned from the peer, per instance.
          type: dict
          returned: when include_routes
          sample: {"RouteServiceRole_IN_0": [{"network": "10.250.0.10/32", "next_hop": "10.10.2.4", "as_path": "65001",
                   "local_address": "10.10.1.4", "source_peer": "10.10.2.4", "origin": "EBgp", "weight": 32768}]}
        advertised_routes:
          description: With O(include_routes), routes the Route Server advertises to the peer, per instance.
          type: dict
          returned: when include_routes
"""

from ansible_collections.anycast.nva.plugins.module_utils import route_server
from ansible_collections.anycast.nva.plugins.module_utils.module_runner import run_module


def main():
    run_module(route_server.INFO_ARGUMENT_SPEC, route_server.info)


if __name__ == "__main__":
    main()
