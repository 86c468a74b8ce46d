# -*- coding: utf-8 -*-
# Copyright: (c) 2026, anycast.nva maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A BGP peer of a Route Server (ARM: virtualHubs/{hub}/bgpConnections/{name})."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.anycast.nva.plugins.module_utils.arm import model, props
from ansible_collections.anycast.nva.plugins.module_utils.compare import differing_keys, result
from ansible_collections.anycast.nva.plugins.module_utils.errors import AnycastError
from ansible_collections.anycast.nva.plugins.module_utils.route_server import list_peers, peer_facts, read_hub
from ansible_collections.anycast.nva.plugins.module_utils.validation import asn, contained_in_any, ipv4_address, resource_name
from ansible_collections.anycast.nva.plugins.module_utils.vnet import address_prefixes, vnet_of_subnet

MAX_PEERS = 8
# Azure refuses to change peerIp or peerAsn of an existing BGP connection (PropertyChangeNotAllowed):
# a change of either deletes and re-creates the peer. Nothing else of a peer is managed here, so an
# in-place PUT only happens to finish a peer whose provisioning did not succeed.
REPLACE_ON = ("peer_ip", "peer_asn")


def _view(facts):
    if not facts:
        return {}
    return dict(name=facts["name"], peer_ip=facts["peer_ip"], peer_asn=facts["peer_asn"])


# The options of route_server_peer (the module adds the common Azure options); documented in the module.
ARGUMENT_SPEC = dict(
    route_server=dict(type="str", required=True),
    resource_group=dict(type="str", required=True),
    name=dict(type="str", required=True),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    peer_ip=dict(type="str"),
    peer_asn=dict(type="int"),
)


def validate(params):
    """Every local check, before the first call to Azure. Returns peer_ip (IPv4Address) and peer_asn (int) parsed;
    both None when state is absent."""
    resource_name(params["route_server"], "route_server")
    resource_name(params["name"], "name")
    if params["state"] != "present":
        return dict(peer_ip=None, peer_asn=None)
    for option in ("peer_ip", "peer_asn"):
        if params[option] is None:
            raise AnycastError(option, "required when state is present")
    return dict(peer_ip=ipv4_address(params["peer_ip"], "peer_ip"), peer_asn=asn(params["peer_asn"], "peer_asn"))


def hub_address_space(session, rg, hub):
    """The address prefixes of the VNet the Route Server lives in (through its ipConfigurations)."""
    configs = session.read("route_server", session.network.virtual_hub_ip_configuration.list, rg, hub["name"])
    subnet_ids = [props(c).get("subnet", {}).get("id") for c in configs if props(c).get("subnet")]
    if not subnet_ids:
        raise AnycastError("route_server", "Route Server %r has no ipConfiguration, so its VNet (and the peers it may have) is unknown" % hub["name"])
    vnet_rg, vnet_name = vnet_of_subnet(subnet_ids[0])
    return address_prefixes(session, "route_server", vnet_rg, vnet_name)


def _check_new_peer(session, params, peer_ip, hub, peers):
    """Refuse, before any write, what Azure would refuse or what could never work."""
    others = [p for p in peers if p["name"].lower() != params["name"].lower()]
    if len(others) >= MAX_PEERS:
        raise AnycastError("route_server", "Route Server %r already has %d BGP peers (%s); Azure allows at most %d"
                           % (hub["name"], len(others), ", ".join(sorted(p["name"] for p in others)), MAX_PEERS), code="PeerLimitReached")
    space = hub_address_space(session, params["resource_group"], hub)
    if not contained_in_any(peer_ip, space):
        raise AnycastError("peer_ip", "%s is outside the Route Server's VNet address space (%s)" % (params["peer_ip"], ", ".join(space)))
    clash = [p["name"] for p in others if p["peer_ip"] == params["peer_ip"]]
    if clash:
        raise AnycastError("peer_ip", "%s is already the address of peer %s" % (params["peer_ip"], clash[0]))


def ensure(session, params):
    """route_server_peer: make the peer present (in place or replaced) or absent."""
    parsed = validate(params)
    rg, hub_name, name = params["resource_group"], params["route_server"], params["name"]
    net = session.network
    hub = read_hub(session, "route_server", rg, hub_name)
    peers = [peer_facts(c) for c in list_peers(session, "route_server", rg, hub_name)]
    current = next((p for p in peers if p["name"].lower() == name.lower()), None)
    before = _view(current)

    if params["state"] == "absent":
        if current is not None:
            session.write("name", net.virtual_hub_bgp_connection.begin_delete, rg, hub_name, current["name"])
        return result(before, {}, peer={}, replaced=False)

    desired = dict(name=current["name"] if current else name, peer_ip=str(parsed["peer_ip"]), peer_asn=parsed["peer_asn"])
    changed_keys = differing_keys(before, desired) if current else []
    replaced = any(key in REPLACE_ON for key in changed_keys)
    if current is None or replaced:
        _check_new_peer(session, params, parsed["peer_ip"], hub, peers)
    # A peer whose last operation failed is written again with the same values: that is how Azure repairs it.
    repair = current is not None and not changed_keys and current["provisioning_state"] == "Failed"
    put = current is None or bool(changed_keys) or repair
    if not put and current["provisioning_state"] == "Succeeded":
        return result(before, before, peer=current, replaced=False)

    facts = dict(current or {}, **desired)
    if not session.check_mode:
        if replaced:
            session.write("name", net.virtual_hub_bgp_connection.begin_delete, rg, hub_name, current["name"])
        if put:
            body = model("BgpConnection", dict(name=desired["name"], properties=dict(peerIp=desired["peer_ip"], peerAsn=desired["peer_asn"])))
            session.write("name", net.virtual_hub_bgp_connection.begin_create_or_update, rg, hub_name, desired["name"], body)
        facts = wait_for_peer(session, rg, hub_name, desired["name"])
    return result(before, desired, changed=put, peer=facts, replaced=replaced, changed_keys=changed_keys)


def wait_for_peer(session, rg, hub_name, name):
    """Poll the peer until its provisioningState is Succeeded (bounded by timeout)."""

    def probe():
        conn = session.read("name", session.network.virtual_hub_bgp_connection.get, rg, hub_name, name)
        facts = peer_facts(conn)
        if facts["provisioning_state"] == "Failed":
            raise AnycastError("name", "peer %r is in provisioningState Failed" % name, code="PeerProvisioningFailed")
        return facts["provisioning_state"] == "Succeeded", facts

    return session.wait_until("name", "peer provisioningState Succeeded", probe)
