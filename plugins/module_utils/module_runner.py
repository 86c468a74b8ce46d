# -*- coding: utf-8 -*-
# Copyright: (c) 2026, anycast.nva maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The main() of every module: build the AnsibleModule, run the resource logic inside the one error boundary."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.anycast.nva.plugins.module_utils.arm import ArmSession, argument_spec
from ansible_collections.anycast.nva.plugins.module_utils.errors import AnycastError


def run_module(module_options, action):
    """Run one module: module_options is its own argument spec (the common Azure options are added here),
    action(session, params) returns the module's result. An AnycastError fails the module naming the option at fault."""
    module = AnsibleModule(argument_spec=argument_spec(**module_options), supports_check_mode=True)
    try:
        outcome = action(ArmSession.from_module(module), module.params)
    except AnycastError as err:
        module.fail_json(**err.fail_kwargs())
    module.exit_json(**outcome)
