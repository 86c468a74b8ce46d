# -*- coding: utf-8 -*-
# Copyright: (c) 2026, anycast.nva maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A BGP peer of a Route Server (ARM: virtualHubs/{hub}/bgpConnections/{name})."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress

from ansible_collections.anycast.nva.plugins.module_utils.arm import model, parse_id, props
from ansible_collections.anycast.nva.plugins.module_utils.compare import differing_keys, result, same_id
from ansible_collections.anycast.nva.plugins.module_utils.errors import AnycastError
from ansible_collections.anycast.nva.plugins.module_utils.route_server import list_peers, peer_facts, read_hub
from ansible_collections.anycast.nva.plugins.module_utils.validation import asn, contained_in_any, ipv4_address, resource_name
from ansible_collections.anycast.nva.plugins.module_utils.vnet import vnet_of_subnet

MAX_PEERS = 8
# Route Server supports only 16-bit (2-byte) ASNs (its FAQ: "Can I use 32-bit (4 byte) ASNs? No").
MAX_PEER_ASN = 65535
# Azure refuses to change peerIp or peerAsn of an existing BGP connection (PropertyChangeNotAllowed):
# a change of either deletes and re-creates the peer, and only with replace: true (the NVA's session drops
# meanwhile). Nothing else of a peer is managed here, so an in-place PUT only happens to finish a peer whose
# provisioning did not succeed.
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
    replace=dict(type="bool", default=False),
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
    peer_asn = asn(params["peer_asn"], "peer_asn")
    if peer_asn > MAX_PEER_ASN:
        raise AnycastError("peer_asn", "ASN %d is a 4-byte ASN; Route Server peers only with 2-byte ASNs (1 to %d)" % (peer_asn, MAX_PEER_ASN))
    return dict(peer_ip=ipv4_address(params["peer_ip"], "peer_ip"), peer_asn=peer_asn)


def _hub_vnet(session, rg, hub):
    """The VNet the Route Server lives in (through its ipConfiguration) and the id of its RouteServerSubnet."""
    configs = session.read("route_server", session.network.virtual_hub_ip_configuration.list, rg, hub["name"])
    subnet_ids = [props(c).get("subnet", {}).get("id") for c in configs if props(c).get("subnet")]
    if not subnet_ids:
        raise AnycastError("route_server", "Route Server %r has no ipConfiguration, so its VNet (and the peers it may have) is unknown" % hub["name"])
    vnet_rg, vnet_name = vnet_of_subnet(subnet_ids[0])
    return session.read("route_server", session.network.virtual_networks.get, vnet_rg, vnet_name), subnet_ids[0]


def _subnet_prefix(subnet):
    return props(subnet).get("addressPrefix") or (props(subnet).get("addressPrefixes") or [None])[0]


def _address_space(vnet):
    return (props(vnet).get("addressSpace") or {}).get("addressPrefixes") or []


def _peered_vnet_holding(session, peer_ip, hub_vnet):
    """The VNet directly peered with the hub's VNet (peering Connected) whose address space holds peer_ip, read
    from Azure; None when there is none. Route Server peers with NVAs there too, not with those further away."""
    for peering in props(hub_vnet).get("virtualNetworkPeerings") or []:
        peering = props(peering)
        remote_space = (peering.get("remoteAddressSpace") or {}).get("addressPrefixes") or []
        if peering.get("peeringState") == "Connected" and contained_in_any(peer_ip, remote_space):
            remote = parse_id((peering.get("remoteVirtualNetwork") or {}).get("id"))
            return session.read("peer_ip", session.network.virtual_networks.get, remote.get("resource_group"), remote.get("virtualnetworks"))
    return None


def peer_address_problem(peer_ip, hub, vnet, route_server_subnet_id):
    """Why Route Server could never peer with an NVA at peer_ip (IPv4Address) in vnet, its own VNet or one directly
    peered with it (text), or None."""
    if str(peer_ip) in (props(hub).get("virtualRouterIps") or []):
        return "%s is an address of the Route Server itself (%s)" % (peer_ip, ", ".join(props(hub)["virtualRouterIps"]))
    space = _address_space(vnet)
    if not contained_in_any(peer_ip, space):
        return ("%s is outside the Route Server's VNet %s (%s) and outside every VNet directly peered with it (peering Connected)"
                % (peer_ip, vnet["name"], ", ".join(space)))
    subnet = next((s for s in props(vnet).get("subnets") or [] if _subnet_prefix(s) and contained_in_any(peer_ip, [_subnet_prefix(s)])), None)
    if subnet is None:
        return "%s is in no subnet of VNet %s, so no NVA can have it" % (peer_ip, vnet["name"])
    if same_id(subnet["id"], route_server_subnet_id):
        return "%s is inside RouteServerSubnet (%s), which only the Route Server may use" % (peer_ip, _subnet_prefix(subnet))
    network = ipaddress.ip_network(_subnet_prefix(subnet), strict=False)
    if peer_ip < network.network_address + 4 or peer_ip == network.broadcast_address:
        return ("%s is one of the addresses Azure keeps in subnet %s (%s): the first four and the last, so no NVA can have it"
                % (peer_ip, subnet["name"], network))
    return None


def _check_new_peer(session, params, peer_ip, hub, peers):
    """Refuse, before any write, what Azure would refuse or what could never work."""
    others = [p for p in peers if p["name"].lower() != params["name"].lower()]
    if len(others) >= MAX_PEERS:
        raise AnycastError("route_server", "Route Server %r already has %d BGP peers (%s); Azure allows at most %d"
                           % (hub["name"], len(others), ", ".join(sorted(p["name"] for p in others)), MAX_PEERS), code="PeerLimitReached")
    vnet, route_server_subnet_id = _hub_vnet(session, params["resource_group"], hub)
    if not contained_in_any(peer_ip, _address_space(vnet)):
        vnet = _peered_vnet_holding(session, peer_ip, vnet) or vnet
    problem = peer_address_problem(peer_ip, hub, vnet, route_server_subnet_id)
    if problem:
        raise AnycastError("peer_ip", problem)
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
    if replaced and not params["replace"]:
        keys = [key for key in changed_keys if key in REPLACE_ON]
        raise AnycastError(keys[0], "peer %r has %s; Azure cannot change %s of a peer in place, so it must be deleted and created again, "
                           "which drops the NVA's BGP session meanwhile: set replace: true to do that"
                           % (current["name"], ", ".join("%s %s (wanted %s)" % (k, before[k], desired[k]) for k in keys), " or ".join(keys)),
                           code="PropertyChangeNotAllowed")
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
            _replace(session, rg, hub_name, before, desired)
        elif put:
            _put_peer(session, rg, hub_name, desired)
        facts = wait_for_peer(session, rg, hub_name, desired["name"])
    out = result(before, desired, changed=put, peer=facts, replaced=replaced, changed_keys=changed_keys)
    if replaced:
        out["diff"]["after_header"] = "peer %s deleted and created again (%s cannot change in place)" % (desired["name"], ", ".join(changed_keys))
    return out


def _put_peer(session, rg, hub_name, view):
    body = model("BgpConnection", dict(name=view["name"], properties=dict(peerIp=view["peer_ip"], peerAsn=view["peer_asn"])))
    session.write("name", session.network.virtual_hub_bgp_connection.begin_create_or_update, rg, hub_name, view["name"], body)


def _replace(session, rg, hub_name, old, new):
    """Delete the peer and create it with the new values; when the create fails, put the old peer back, so the NVA
    is never left without one. The create may use half of the time left: the other half is kept for the way back."""
    session.write("name", session.network.virtual_hub_bgp_connection.begin_delete, rg, hub_name, old["name"])
    failure = None
    try:
        with session.time_box(session.remaining() / 2):
            _put_peer(session, rg, hub_name, new)
    except AnycastError as err:
        failure = err
    if failure is None:
        return
    api = session.network.virtual_hub_bgp_connection
    try:
        if session.find("name", api.get, rg, hub_name, old["name"]) is not None:
            # The create got as far as a peer with the new values (its operation failed): it goes first.
            session.write("name", api.begin_delete, rg, hub_name, old["name"])
        _put_peer(session, rg, hub_name, old)
        wait_for_peer(session, rg, hub_name, old["name"])
    except AnycastError as err:
        raise AnycastError(failure.field, "%s; the old peer (%s, AS %s) could not be put back either: %s"
                           % (failure.message, old["peer_ip"], old["peer_asn"], err), code=failure.code, status=failure.status) from None
    raise AnycastError(failure.field, "%s; the old peer (%s, AS %s) was put back" % (failure.message, old["peer_ip"], old["peer_asn"]),
                       code=failure.code, status=failure.status)


def wait_for_peer(session, rg, hub_name, name):
    """Poll the peer until its provisioningState is Succeeded (bounded by timeout)."""

    def probe():
        conn = session.read("name", session.network.virtual_hub_bgp_connection.get, rg, hub_name, name)
        facts = peer_facts(conn)
        if facts["provisioning_state"] == "Failed":
            raise AnycastError("name", "peer %r is in provisioningState Failed" % name, code="PeerProvisioningFailed")
        return facts["provisioning_state"] == "Succeeded", facts

    return session.wait_until("name", "peer provisioningState Succeeded", probe)
