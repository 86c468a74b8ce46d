#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, anycast.nva maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: sync_nsg
short_description: Admit the conntrack sync port on the sync subnet only between the NVAs of a region
version_added: 0.1.0
description:
  - Creates or updates an Azure network security group (NSG) with two inbound rules and associates it with the NVAs' sync subnet.
  - Rule C(anycast-sync-allow) (priority O(priority)) allows UDP to O(port) from the NVAs' sync addresses (O(nva_addresses))
    to those addresses; rule C(anycast-sync-deny) (O(priority) + 1) denies UDP to O(port) from anywhere else. conntrackd's state
    sync (role C(anycast.nva.conntrack_sync)) then reaches an NVA only from the other NVAs of its region.
  - Every other port and protocol is left to the group's other rules and to Azure's default rules, which are evaluated after
    (C(AllowVnetInBound) at 65000 admits the rest of the VNet's traffic, SSH included, as it did without an NSG). Other rules
    of the group are kept as they are.
  - All input is checked, and the subnet, its virtual network and the group are read, before the first request that writes.
    Refused then, naming the option, are an address outside the sync subnet, another rule of the group at O(priority) or
    O(priority) + 1 (Azure refuses two inbound rules with one priority), another rule evaluated earlier that admits the sync port
    from beyond the NVAs (the deny would not protect it), a group or O(location) in another region than the subnet's virtual
    network, and a subnet that already has another NSG unless O(replace_nsg=true).
  - The group is written with one request (C(If-Match) with the etag read, C(If-None-Match) when created), then the subnet with
    only its C(networkSecurityGroup) changed and every other property (route table, service endpoints, delegations) kept as
    Azure has it; on 412 the module reads the resource again and applies only its own change, within O(timeout).
author:
  - anycast.nva maintainers (@anycast-nva)
options:
  name:
    description: Name of the network security group.
    type: str
    required: true
  resource_group:
    description: Resource group of the network security group (and the default one of the subnet's virtual network).
    type: str
    required: true
  location:
    description:
      - Azure region of the group. Unset, the region of the subnet's virtual network (the only one Azure accepts).
      - A region other than the virtual network's fails the task before any write.
    type: str
  subnet:
    description: The NVAs' sync subnet, which gets the group.
    type: dict
    required: true
    suboptions:
      virtual_network:
        description: The subnet's virtual network.
        type: str
        required: true
      name:
        description: The subnet. Not C(RouteServerSubnet) or C(GatewaySubnet), where Azure supports no NSG.
        type: str
        required: true
      resource_group:
        description: Resource group of the virtual network; defaults to O(resource_group).
        type: str
  nva_addresses:
    description:
      - The sync address of every NVA of the region (C(conntrack_sync_local_address) of each), IPv4, each in the subnet.
      - The allow rule lists exactly these, as sources and as destinations.
    type: list
    elements: str
    required: true
  port:
    description: The UDP port conntrackd's sync uses (the role's C(conntrack_sync_port)).
    type: int
    default: 3780
  priority:
    description:
      - Priority of the allow rule; the deny rule takes O(priority) + 1. From 100 to 4095; lower numbers are evaluated first.
      - Both must be free among the group's inbound rules, and no other rule evaluated before the deny rule may admit the sync port
        from beyond the NVAs.
    type: int
    default: 200
  replace_nsg:
    description:
      - Put this group on the subnet when the subnet already has another one. Its rules then no longer apply to the subnet.
      - V(false) fails the task naming O(subnet) before any write.
    type: bool
    default: false
notes:
  - The module does not remove the group or its rules; to undo, dissociate and delete the group with other tools.
  - The rules are stateful, as every NSG rule is; conntrackd's sync is one-way datagrams to each peer, which the allow rule admits.
extends_documentation_fragment:
  - anycast.nva.azure
  - anycast.nva.azure.changes
  - ansible.builtin.action_common_attributes
"""

EXAMPLES = r"""
- name: Admit the conntrack sync port only between the region's NVAs
  anycast.nva.sync_nsg:
    resource_group: rg-westeurope
    name: nsg-sync-westeurope
    subnet:
      virtual_network: vnet-hub
      name: snet-sync
    nva_addresses: [10.10.3.4, 10.10.3.5]

- name: The same, from the inventory, with the role's port
  anycast.nva.sync_nsg:
    resource_group: "{{ anycast_resource_group }}"
    name: "{{ anycast_sync_nsg_name }}"
    subnet: {virtual_network: "{{ anycast_hub_vnet }}", name: "{{ anycast_sync_subnet }}"}
    nva_addresses: "{{ groups['nva'] | map('extract', hostvars, 'conntrack_sync_local_address') | list }}"
    port: "{{ conntrack_sync_port | default(3780) }}"
"""

RETURN = r"""
nsg:
  description: The group as the run leaves it (as it would be, in check mode).
  returned: success
  type: dict
  contains:
    id:
      description: ARM id of the group.
      type: str
      sample: /subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/nsg-sync
    name:
      description: Group name.
      type: str
    location:
      description: Azure region.
      type: str
    rules:
      description: The module's two rules (name, priority, direction, access, protocol, source, source_ports, destination, destination_ports).
      type: list
      elements: dict
      sample: [{"name": "anycast-sync-allow", "priority": 200, "direction": "Inbound", "access": "Allow", "protocol": "Udp",
                "source": ["10.10.3.4", "10.10.3.5"], "source_ports": ["*"], "destination": ["10.10.3.4", "10.10.3.5"],
                "destination_ports": ["3780"]}]
    subnet:
      description: ARM id of the sync subnet.
      type: str
    subnet_nsg:
      description: ARM id of the group on the subnet (this group).
      type: str
associated:
  description: Whether this run put the group on the subnet.
  returned: success
  type: bool
replaced:
  description: ARM id of the other group this run took off the subnet (O(replace_nsg=true)), else null.
  returned: success
  type: str
diff:
  description: The group's name, location and the module's rules, and the group on the subnet, before and after.
  returned: always
  type: dict
error:
  description: On failure, the option at fault and Azure's error code, message and HTTP status.
  returned: failure
  type: dict
  sample: {"field": "nva_addresses[1]", "code": null, "message": "10.10.9.4 is not in the sync subnet snet-sync (10.10.3.0/24)", "status": null}
"""

from ansible_collections.anycast.nva.plugins.module_utils import sync_nsg
from ansible_collections.anycast.nva.plugins.module_utils.module_runner import run_module


def main():
    run_module(sync_nsg.ARGUMENT_SPEC, sync_nsg.ensure)


if __name__ == "__main__":
    main()
