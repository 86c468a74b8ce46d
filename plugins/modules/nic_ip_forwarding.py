#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, anycast.nva maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: nic_ip_forwarding
short_description: Enable or disable IP forwarding on Azure network interfaces
version_added: 0.1.0
description:
  - Azure drops packets addressed to an IP a NIC does not own unless the NIC has IP forwarding enabled; every NVA NIC that
    receives anycast traffic needs it.
  - Reads every listed NIC first (a missing one, or one listed twice, fails before any write), then sends one request per NIC
    whose setting differs, with C(If-Match) (on 412 it reads the NIC again and applies only its change, within O(timeout)).
author:
  - anycast.nva maintainers (@anycast-nva)
options:
  nics:
    description: Names of the network interfaces (one name or a list).
    type: list
    elements: str
    required: true
    aliases: [nic]
  resource_group:
    description: Resource group of the network interfaces.
    type: str
    required: true
  enabled:
    description: V(true) enables IP forwarding, V(false) disables it.
    type: bool
    default: true
extends_documentation_fragment:
  - anycast.nva.azure
  - anycast.nva.azure.changes
  - ansible.builtin.action_common_attributes
"""

EXAMPLES = r"""
- name: Let the NVAs receive traffic for the anycast IP
  anycast.nva.nic_ip_forwarding:
    resource_group: rg-westeurope
    nics:
      - nva-1-nic
      - nva-2-nic

- name: Turn it off on a retired NVA
  anycast.nva.nic_ip_forwarding:
    resource_group: rg-westeurope
    nic: nva-3-nic
    enabled: false
"""

RETURN = r"""
nics:
  description: The listed NICs after the run.
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: NIC name.
      type: str
    id:
      description: ARM id.
      type: str
    ip_forwarding:
      description: IP forwarding setting.
      type: bool
changed_nics:
  description: Names of the NICs this run changed (would change, in check mode).
  returned: success
  type: list
  elements: str
diff:
  description: IP forwarding per NIC name, before and after.
  returned: success
  type: dict
  sample: {"before": {"ip_forwarding": {"nva-1-nic": false}}, "after": {"ip_forwarding": {"nva-1-nic": true}}}
error:
  description: On failure, the option at fault and Azure's error code, message and HTTP status.
  returned: failure
  type: dict
"""

from ansible_collections.anycast.nva.plugins.module_utils import nic_ip_forwarding
from ansible_collections.anycast.nva.plugins.module_utils.module_runner import run_module


def main():
    run_module(nic_ip_forwarding.ARGUMENT_SPEC, nic_ip_forwarding.ensure)


if __name__ == "__main__":
    main()
