#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, anycast.nva maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: route_table
short_description: Manage an Azure route table (UDR), its routes and its subnet associations
version_added: 0.1.0
description:
  - Creates, updates or deletes an Azure route table with its routes given as one authoritative list.
  - The whole table, every route embedded, is written with a single request; then one request per subnet
    whose association changes.
  - Subnets are associated when listed in O(subnets). A subnet is dissociated only when it is listed in
    O(dissociate_subnets) or when O(purge_subnets=true); never silently.
  - All input is checked, and every subnet is read, before the first request that writes. More than 400 routes (Azure's
    limit per route table) and a route table on C(RouteServerSubnet) (Route Server does not support one) are refused.
  - Every write of the table or of a subnet carries C(If-Match) with the etag read; when another client wrote the resource
    in between (412), the module reads it again and applies only its own change, within O(timeout).
author:
  - anycast.nva maintainers (@anycast-nva)
options:
  name:
    description: Name of the route table.
    type: str
    required: true
  resource_group:
    description: Resource group of the route table (and the default one of the subnets).
    type: str
    required: true
  location:
    description:
      - Azure region. Required to create the table; an existing table keeps its region.
      - Checked against the subscription's locations before a create writes anything.
    type: str
  state:
    description:
      - V(present) creates or updates the table; V(absent) deletes it.
      - Azure cannot delete a table that subnets still use; list them in O(dissociate_subnets) or set O(purge_subnets=true).
    type: str
    choices: [present, absent]
    default: present
  routes:
    description:
      - The routes of the table. With O(purge_routes=true) (the default) this list is authoritative.
      - Omit it to leave the routes alone; V([]) with O(purge_routes=true) removes them all.
    type: list
    elements: dict
    suboptions:
      name:
        description: Route name (1-80 characters, letters, digits, V(_), V(.), V(-)).
        type: str
        required: true
      address_prefix:
        description: Destination as an IPv4 CIDR prefix without host bits, for example V(10.250.0.10/32).
        type: str
        required: true
      next_hop_type:
        description: Where matching traffic goes.
        type: str
        required: true
        choices: [VirtualNetworkGateway, VnetLocal, Internet, VirtualAppliance, None]
      next_hop_ip_address:
        description: The NVA's IPv4 address. Required when O(routes[].next_hop_type=VirtualAppliance), refused otherwise.
        type: str
  purge_routes:
    description: Remove routes of the table that O(routes) does not list.
    type: bool
    default: true
  disable_bgp_route_propagation:
    description:
      - Do not let the subnets learn routes from BGP (VPN / ExpressRoute gateways, Route Server).
      - Unset keeps the current value (V(false) for a new table).
    type: bool
  subnets:
    description:
      - Subnets to associate with the table.
      - Each subnet's virtual network must be in the table's region (Azure associates a table only with subnets of its
        own region); a subnet elsewhere fails the task before any write.
    type: list
    elements: dict
    suboptions: &subnet_keys  # dissociate_subnets takes the same keys
      virtual_network:
        description: The subnet's virtual network.
        type: str
        required: true
      name:
        description: The subnet.
        type: str
        required: true
      resource_group:
        description: Resource group of the virtual network; defaults to O(resource_group).
        type: str
  dissociate_subnets:
    description: Subnets to dissociate from this table (only if they use it now). Same keys as O(subnets).
    type: list
    elements: dict
    suboptions: *subnet_keys
  purge_subnets:
    description: Dissociate every subnet that uses this table and is not listed in O(subnets).
    type: bool
    default: false
extends_documentation_fragment:
  - anycast.nva.azure
  - anycast.nva.azure.changes
  - ansible.builtin.action_common_attributes
"""

EXAMPLES = r"""
- name: Send the spoke's return traffic through the region's NVAs
  anycast.nva.route_table:
    resource_group: rg-westeurope
    name: rt-spoke-app
    location: westeurope
    disable_bgp_route_propagation: true
    routes:
      - name: onprem-via-nva
        address_prefix: 172.16.0.0/16
        next_hop_type: VirtualAppliance
        next_hop_ip_address: 10.10.2.4
    subnets:
      - virtual_network: vnet-spoke
        name: app

- name: Move the app subnet to another table and delete this one
  anycast.nva.route_table:
    resource_group: rg-westeurope
    name: rt-old
    state: absent
    dissociate_subnets:
      - virtual_network: vnet-spoke
        name: app
"""

RETURN = r"""
route_table:
  description: The table after the run (as it would be in check mode). Empty after O(state=absent).
  returned: always
  type: dict
  contains:
    id:
      description: ARM id of the table.
      type: str
      sample: /subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Network/routeTables/rt-spoke-app
    name:
      description: Table name.
      type: str
    location:
      description: Azure region.
      type: str
    disable_bgp_route_propagation:
      description: Whether BGP routes are kept off the associated subnets.
      type: bool
    routes:
      description: Routes, sorted by name.
      type: list
      elements: dict
      sample: [{"name": "onprem-via-nva", "address_prefix": "172.16.0.0/16", "next_hop_type": "VirtualAppliance", "next_hop_ip_address": "10.10.2.4"}]
    subnets:
      description: ARM ids of the subnets associated with the table.
      type: list
      elements: str
associated:
  description: ARM ids of the subnets this run associated with the table.
  returned: always
  type: list
  elements: str
dissociated:
  description: ARM ids of the subnets this run dissociated from the table.
  returned: always
  type: list
  elements: str
diff:
  description: The table before and after (name, location, disable_bgp_route_propagation, routes, subnets).
  returned: always
  type: dict
  sample: {"before": {}, "after": {"name": "rt-spoke-app", "routes": [], "subnets": []}}
error:
  description: On failure, the option at fault and Azure's error code, message and HTTP status.
  returned: failure
  type: dict
  sample: {"field": "routes[0].next_hop_ip_address", "code": null, "message": "required when next_hop_type is VirtualAppliance", "status": null}
"""

from ansible_collections.anycast.nva.plugins.module_utils import route_table
from ansible_collections.anycast.nva.plugins.module_utils.module_runner import run_module


def main():
    run_module(route_table.ARGUMENT_SPEC, route_table.ensure)


if __name__ == "__main__":
    main()
