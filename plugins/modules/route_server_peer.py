#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, anycast.nva maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: route_server_peer
short_description: Register an NVA as a BGP peer of an Azure Route Server
version_added: 0.1.0
description:
  - Ensures one BGP peer (ARM C(virtualHubs/{hub}/bgpConnections/{name})) of a Route Server is present or absent.
  - Azure does not change the address or ASN of an existing peer in place (C(PropertyChangeNotAllowed)). When O(peer_ip)
    or O(peer_asn) differ, the peer must be deleted and created again, which drops the NVA's BGP session meanwhile. The
    module does that only with O(replace=true), and otherwise fails naming the option, with no write. A replacement is
    reported (RV(replaced=true)), and the diff shows the old and the new values under the header
    C(peer NAME deleted and created again).
  - If the create of a replacement fails, the old peer is put back and the module fails with Azure's error. The create
    may use half of the time left of O(timeout); the other half is kept for putting the old peer back.
  - Before any write it refuses an ASN Azure or IANA reserve (8074, 8075, 12076, 23456, 64496-64511, 65515, 65517-65520,
    65535-65551) or one outside 1-65535 (Route Server supports only 2-byte ASNs), a ninth peer (Azure allows 8), and a peer
    address outside the Route Server's VNet and outside every VNet directly peered with it (peering C(Connected)), in no
    subnet of that VNet, inside C(RouteServerSubnet), equal to one of the Route Server's own addresses, or one of the
    addresses Azure keeps in a subnet (the first four and the last).
  - Azure refuses writes to a hub while another one runs (409 C(AnotherOperationInProgress)) and peer writes while the hub's
    routing is not provisioned yet (C(HubBgpConnectionParentHubMustHaveProvisionedRoutingState)); the module waits and
    retries those within O(timeout), so several NVAs can register in parallel.
  - Waits until the peer's provisioning state is C(Succeeded).
author:
  - anycast.nva maintainers (@anycast-nva)
options:
  name:
    description: Name of the peer (one per NVA, for example the NVA's host name).
    type: str
    required: true
  state:
    description: V(present) or V(absent).
    type: str
    choices: [present, absent]
    default: present
  peer_ip:
    description: The NVA's IPv4 address in the Route Server's VNet. Required when O(state=present).
    type: str
  peer_asn:
    description: The NVA's ASN. Required when O(state=present).
    type: int
  replace:
    description:
      - Allow deleting the peer and creating it again when O(peer_ip) or O(peer_asn) changed (Azure cannot change them in place).
      - The NVA's BGP session with Route Server drops until the new peer is provisioned and the NVA connects again.
    type: bool
    default: false
extends_documentation_fragment:
  - anycast.nva.route_server
  - anycast.nva.route_server.parent
  - anycast.nva.azure
  - anycast.nva.azure.changes
  - ansible.builtin.action_common_attributes
"""

EXAMPLES = r"""
- name: Register every NVA of the region with the Route Server
  anycast.nva.route_server_peer:
    resource_group: rg-westeurope
    route_server: rs-westeurope
    name: "{{ inventory_hostname }}"
    peer_ip: "{{ ansible_host }}"
    peer_asn: 65001
  delegate_to: localhost

- name: Move an NVA to a new address (its BGP session drops while the peer is re-created)
  anycast.nva.route_server_peer:
    resource_group: rg-westeurope
    route_server: rs-westeurope
    name: nva-1
    peer_ip: 10.10.2.6
    peer_asn: 65001
    replace: true

- name: Take an NVA out for good
  anycast.nva.route_server_peer:
    resource_group: rg-westeurope
    route_server: rs-westeurope
    name: nva-3
    state: absent
"""

RETURN = r"""
peer:
  description: The peer after the run (as it would be, in check mode). Empty after O(state=absent).
  returned: always
  type: dict
  contains:
    name:
      description: Peer name.
      type: str
    id:
      description: ARM id.
      type: str
    peer_ip:
      description: NVA address.
      type: str
      sample: 10.10.2.4
    peer_asn:
      description: NVA ASN.
      type: int
      sample: 65001
    connection_state:
      description: BGP session state as Azure reports it.
      type: str
    provisioning_state:
      description: ARM provisioning state.
      type: str
replaced:
  description: Whether the peer was deleted and re-created (its address or ASN changed, with O(replace=true)).
  returned: always
  type: bool
changed_keys:
  description: The peer settings this run changed.
  returned: when state is present and something changed
  type: list
  elements: str
diff:
  description: Before and after of name, peer_ip and peer_asn; a replacement adds C(after_header).
  returned: always
  type: dict
  sample: {"before": {"name": "nva-1", "peer_ip": "10.10.2.4", "peer_asn": 65001}, "after": {"name": "nva-1", "peer_ip": "10.10.2.6", "peer_asn": 65001}}
error:
  description: On failure, the option at fault and Azure's error code, message and HTTP status.
  returned: failure
  type: dict
"""

from ansible_collections.anycast.nva.plugins.module_utils import route_server_peer
from ansible_collections.anycast.nva.plugins.module_utils.module_runner import run_module


def main():
    run_module(route_server_peer.ARGUMENT_SPEC, route_server_peer.ensure)


if __name__ == "__main__":
    main()
