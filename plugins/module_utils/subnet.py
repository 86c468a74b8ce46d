# -*- coding: utf-8 -*-
# Copyright: (c) 2026, anycast.nva maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A subnet's reference to another resource (its route table, its network security group): the subnet is written with
that one property changed and every other one sent back as Azure has it at the time of the write (If-Match)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import functools

from ansible_collections.anycast.nva.plugins.module_utils.arm import model, parse_id, props
from ansible_collections.anycast.nva.plugins.module_utils.compare import same_id


def subnet_args(subnet_id):
    """(resource group, vnet, subnet) of a subnet id: the arguments of subnets.get / create."""
    parts = parse_id(subnet_id)
    return parts.get("resource_group"), parts.get("virtualnetworks"), parts.get("subnets")


def referenced(subnet, key):
    """The id the subnet's property key (routeTable, networkSecurityGroup) references, or None."""
    return (props(subnet).get(key) or {}).get("id")


def uses(subnet, key, resource_id):
    return same_id(referenced(subnet, key), resource_id)


def _with_reference(key, resource_id, subnet):
    """The subnet as read with only its property key changed (None when it already references resource_id)."""
    if uses(subnet, key, resource_id):
        return None
    body = dict(subnet)
    body["properties"] = dict(props(subnet))
    if resource_id:
        body["properties"][key] = dict(id=resource_id)
    else:
        body["properties"].pop(key, None)
    return model("Subnet", body)


def put_reference(session, field, subnet, key, resource_id):
    """Point the subnet's property key at resource_id (None removes it); when another client wrote the subnet since it
    was read (412), it is read again and only this change applied to it."""
    args, api = subnet_args(subnet["id"]), session.network.subnets
    session.update(field, subnet, functools.partial(_with_reference, key, resource_id), functools.partial(session.read, field, api.get, *args),
                   api.begin_create_or_update, *args)
