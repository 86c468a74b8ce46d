"""Learned and advertised routes of a Route Server peer, read from the speakers' real BGP state.

The emulator's --routes-cmd calls this with (hub, connection, peer ip, learned|advertised) and
returns our stdout as the body of the long-running POST: Azure's shape, one list per instance.
"""
import re

from ..hosts.util import LabError
from . import birdconf, plan, routers

# First line of a route in `birdc show route ... all`: "10.250.0.10/32  unicast [peer_10_10_2_4 ...] * (100) [AS65001i]"
ROUTE_LINE = re.compile(r"^(?P<net>\d+\.\d+\.\d+\.\d+/\d+)?\s+\S+\s+\[(?P<proto>\S+)\s")


def parse_routes(text):
    """Routes of `birdc show route ... all` as dicts: network, proto, source (BGP|static|...), as_path, origin."""
    routes, network, current = [], None, None
    for line in text.splitlines():
        match = ROUTE_LINE.match(line)
        if match:
            network = match.group("net") or network
            current = {"network": network, "proto": match.group("proto"), "as_path": [], "origin": None, "source": None}
            routes.append(current)
        elif current is not None:
            key, _sep, value = line.strip().partition(":")
            value = value.strip()
            if key == "Type":
                current["source"] = value.split()[0]
            elif key == "BGP.as_path":
                current["as_path"] = value.split()
            elif key == "BGP.origin":
                current["origin"] = value
    return routes


def _region(hub_name):
    region = next((reg for reg in plan.REGIONS if reg.route_server.lower() == hub_name.lower()), None)
    if region is None:
        raise LabError(f"{hub_name} is not a Route Server of the lab")
    return region


def bgp_states(router, base=None):
    """{protocol: state} of a lab router's BGP sessions: 'Established', else BIRD's protocol state (start, down, ...)."""
    states = {}
    for line in routers.birdc(router, "show", "protocols", base=base, check=False).splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[1] == "BGP":
            states[fields[0]] = "Established" if "Established" in fields[4:] else fields[3]
    return states


def established(router, proto):
    """True when BGP protocol `proto` of a lab router is Established."""
    return bgp_states(router).get(proto) == "Established"


def peer_state(hub_name, peer_ip):
    """A bgpConnection's connectionState: Connected while either instance holds an established session."""
    region = _region(hub_name)
    proto = birdconf.peer_protocol(peer_ip)
    return "Connected" if any(established(routers.speaker_name(region, i), proto) for i in (0, 1)) else "Connecting"


def peer_routes(hub_name, peer_ip, kind):
    """{"RouteServiceRole_IN_0": [...], "RouteServiceRole_IN_1": [...]} for one peer of a lab hub."""
    region = _region(hub_name)
    proto = birdconf.peer_protocol(peer_ip)
    body = {}
    for instance, local in enumerate(region.rs_ips):
        name = routers.speaker_name(region, instance)
        if kind == "learned":
            text = routers.birdc(name, "show", "route", "protocol", proto, "all", check=False)
            entries = [{"localAddress": local, "network": route["network"], "nextHop": peer_ip, "sourcePeer": peer_ip,
                        "origin": "EBgp", "asPath": "-".join(route["as_path"]), "weight": 32768}
                       for route in parse_routes(text)]
        else:
            text = routers.birdc(name, "show", "route", "export", proto, "all", check=False)
            # What the peer receives: the speaker prepends its own ASN on the eBGP session.
            entries = [{"localAddress": local, "network": route["network"], "nextHop": local, "sourcePeer": local,
                        "origin": "EBgp" if route["source"] == "BGP" else "Igp",
                        "asPath": "-".join([str(plan.RS_ASN)] + route["as_path"]), "weight": 0}
                       for route in parse_routes(text)]
        body[f"RouteServiceRole_IN_{instance}"] = entries
    return body
