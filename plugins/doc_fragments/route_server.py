# -*- coding: utf-8 -*-
# Copyright: (c) 2026, anycast.nva maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Every Route Server module: the resource group the Route Server lives in.
    DOCUMENTATION = r"""
options:
  resource_group:
    description: Resource group of the Route Server.
    type: str
    required: true
"""

    # A module whose `name` is the Route Server itself (route_server, route_server_info).
    NAME = r"""
options:
  name:
    description: Name of the Route Server.
    type: str
    required: true
"""

    # A module whose `name` is a child of the Route Server, which `route_server` names (route_server_peer).
    PARENT = r"""
options:
  route_server:
    description: Name of the Route Server.
    type: str
    required: true
"""
