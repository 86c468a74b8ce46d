#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, anycast.nva maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: route_server
short_description: Ensure an Azure Route Server's branch-to-branch and routing preference; create or delete one
version_added: 0.1.0
description:
  - Ensures C(allowBranchToBranchTraffic) (needed for the anycast /32 to reach on-premises over ExpressRoute) and the
    hub routing preference of a Route Server (ARM C(Microsoft.Network/virtualHubs)).
  - With O(create=true), creates a missing Route Server as Azure does it, a Standard static public IP, the hub (sku Standard),
    and its ipConfiguration on the VNet's C(RouteServerSubnet).
  - Before the first write of a create it checks the subnet (named C(RouteServerSubnet), a /27 or larger, used by no other
    hub), the region (the VNet's) and an existing public IP (Standard, static, same region, unused).
  - A Route Server left half-built (a hub without ipConfiguration, a public IP without hub) is completed by a rerun with
    O(create=true); without it the module fails at once instead of waiting for a routing state that cannot come.
  - Waits (bounded by O(timeout)) until the hub's routing state is C(Provisioned), so peers can be registered next.
  - Changes to the hub carry C(If-Match); a hub another client wrote in between is read again and only this task's settings applied.
  - O(state=absent) deletes the ipConfigurations and then the Route Server; the public IP is kept.
author:
  - anycast.nva maintainers (@anycast-nva)
options:
  resource_group:
    description: Resource group of the Route Server (and of a public IP it creates).
  state:
    description: V(present) or V(absent).
    type: str
    choices: [present, absent]
    default: present
  allow_branch_to_branch_traffic:
    description:
      - Exchange routes with the ExpressRoute and VPN gateways of the VNet. Unset keeps the current value (V(false) for a new one).
    type: bool
  hub_routing_preference:
    description: Which path wins when a prefix is learned several ways. Unset keeps the current value (V(ExpressRoute) for a new one).
    type: str
    choices: [ExpressRoute, VpnGateway, ASPath]
  create:
    description: Create the Route Server when it does not exist. Without it a missing Route Server is an error.
    type: bool
    default: false
  location:
    description:
      - Azure region. Required with O(create=true) for a new Route Server.
      - Checked against the subscription's locations and the VNet's region before a create writes anything.
    type: str
  virtual_network:
    description: The hub VNet. Required with O(create=true) for a new Route Server.
    type: str
  virtual_network_resource_group:
    description: Resource group of O(virtual_network); defaults to O(resource_group).
    type: str
  subnet:
    description: Subnet of O(virtual_network) that hosts the Route Server (Azure requires this name, a /27 or larger).
    type: str
    default: RouteServerSubnet
  public_ip:
    description: Name of the Standard public IP for a new Route Server; created when missing. Defaults to C(<name>-pip).
    type: str
extends_documentation_fragment:
  - anycast.nva.route_server
  - anycast.nva.route_server.name
  - anycast.nva.azure
  - anycast.nva.azure.changes
  - ansible.builtin.action_common_attributes
"""

EXAMPLES = r"""
- name: Let the anycast /32 reach on-premises through ExpressRoute
  anycast.nva.route_server:
    resource_group: rg-westeurope
    name: rs-westeurope
    allow_branch_to_branch_traffic: true

- name: Create the Route Server of a new region (Azure needs 20 minutes or more)
  anycast.nva.route_server:
    resource_group: rg-northeurope
    name: rs-northeurope
    create: true
    location: northeurope
    virtual_network: vnet-hub
    allow_branch_to_branch_traffic: true
    timeout: 3600
"""

RETURN = r"""
route_server:
  description:
    - The Route Server after the run (as it would be, in check mode). Empty after O(state=absent).
    - The keys of RV(anycast.nva.route_server_info#module:route_server) except C(peers).
  returned: always
  type: dict
  sample: {"name": "rs-westeurope", "location": "westeurope", "asn": 65515, "instance_ips": ["10.10.1.4", "10.10.1.5"],
           "allow_branch_to_branch_traffic": true, "hub_routing_preference": "ExpressRoute", "routing_state": "Provisioned"}
changed_keys:
  description: The settings this run changed.
  returned: when state is present
  type: list
  elements: str
  sample: ["allow_branch_to_branch_traffic"]
diff:
  description: Before and after of name, location, allow_branch_to_branch_traffic and hub_routing_preference.
  returned: always
  type: dict
error:
  description: On failure, the option at fault and Azure's error code, message and HTTP status.
  returned: failure
  type: dict
"""

from ansible_collections.anycast.nva.plugins.module_utils import route_server
from ansible_collections.anycast.nva.plugins.module_utils.module_runner import run_module


def main():
    run_module(route_server.ARGUMENT_SPEC, route_server.ensure)


if __name__ == "__main__":
    main()
