# -*- coding: utf-8 -*-
# Copyright: (c) 2026, anycast.nva maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""IP forwarding on NVA NICs: Azure drops packets for addresses a NIC does not own without it."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import functools

from ansible_collections.anycast.nva.plugins.module_utils.arm import model, props
from ansible_collections.anycast.nva.plugins.module_utils.compare import result
from ansible_collections.anycast.nva.plugins.module_utils.errors import AnycastError
from ansible_collections.anycast.nva.plugins.module_utils.validation import resource_name

# The options of nic_ip_forwarding (the module adds the common Azure options); documented in the module.
ARGUMENT_SPEC = dict(
    nics=dict(type="list", elements="str", required=True, aliases=["nic"]),
    resource_group=dict(type="str", required=True),
    enabled=dict(type="bool", default=True),
)


def validate(params):
    if not params["nics"]:
        raise AnycastError("nics", "list at least one network interface")
    seen = {}
    for index, nic in enumerate(params["nics"]):
        resource_name(nic, "nics[%d]" % index)
        if nic.lower() in seen:
            raise AnycastError("nics[%d]" % index, "%s is already listed as nics[%d]" % (nic, seen[nic.lower()]))
        seen[nic.lower()] = index


def _with_forwarding(wanted, nic):
    """The NIC as read with only enableIPForwarding changed (None when it already has that value)."""
    if bool(props(nic).get("enableIPForwarding")) == wanted:
        return None
    body = dict(nic)
    body["properties"] = dict(props(nic), enableIPForwarding=wanted)
    return model("NetworkInterface", body)


def ensure(session, params):
    """nic_ip_forwarding: one PUT per NIC whose enableIPForwarding differs; all NICs are read first."""
    validate(params)
    rg, wanted = params["resource_group"], params["enabled"]
    nics = [session.read("nics[%d]" % index, session.network.network_interfaces.get, rg, nic) for index, nic in enumerate(params["nics"])]
    before = dict((nic["name"], bool(props(nic).get("enableIPForwarding"))) for nic in nics)
    after = dict((name, wanted) for name in before)
    to_change = [nic for nic in nics if before[nic["name"]] != wanted]
    nics_api = session.network.network_interfaces
    for nic in to_change:
        session.update("nics", nic, functools.partial(_with_forwarding, wanted), functools.partial(session.read, "nics", nics_api.get, rg, nic["name"]),
                       nics_api.begin_create_or_update, rg, nic["name"])
    return result(dict(ip_forwarding=before), dict(ip_forwarding=after), changed=bool(to_change),
                  nics=[dict(name=nic["name"], id=nic["id"], ip_forwarding=wanted) for nic in nics],
                  changed_nics=[nic["name"] for nic in to_change])
