"""Every official request/response example of Azure's REST API specs (Microsoft.Network, api-version 2025-07-01) that
concerns a resource type the emulator models is sent to the emulator as the example's request, after seeding what the
request needs, and must be answered with one of the status codes the example documents.

The examples' facts (method, path template and its values, request body, documented statuses) are in the repository:
azure_rest_example_facts.json beside this file, derived from the examples by anycast_lab.arm.example_facts (its
docstring says how). The example's subscription is replaced by the emulator's, its resource groups are created."""
import ipaddress
import json
import re

import pytest
import requests

from anycast_lab.arm.addressing import TYPES, id_ref
from anycast_lab.arm.example_facts import load

FACTS = load()
EXAMPLES = sorted(FACTS["examples"])
# example -> why it is not replayed
EXCLUDED = {
    "VirtualHubIpConfigurationPut": "puts a Route Server's ipConfiguration on a subnet named subnet1: Route Server needs "
                                    "RouteServerSubnet and the emulator refuses any other (InvalidVirtualHubIpConfigurationSubnet)",
}
NVA_SUBNET = "10.200.1.0/24"  # where seeded BGP peers sit, unless the example's body names a peer address


def _chain(template, params):
    """[(type segment, name or None)] of a path template under .../providers/Microsoft.Network/."""
    segments = template.split("providers/Microsoft.Network/", 1)[-1].split("/")
    return [(segments[i], params[segments[i + 1][1:-1]] if i + 1 < len(segments) else None) for i in range(0, len(segments), 2)]


def _modelled(chain):
    parts = "/".join(kind for kind, _name in chain if kind not in ("learnedRoutes", "advertisedRoutes"))
    return parts in TYPES


class _Seed:
    """The topology an example needs: resource groups, VNets (merged), and the resources it reads or refers to."""

    def __init__(self, emu, location, peer_ip=None):
        self.emu, self.location = emu, location
        self.peer_net = str(ipaddress.IPv4Network(f"{peer_ip}/24", strict=False)) if peer_ip else NVA_SUBNET
        self.groups, self.vnets = {}, {}
        self.lists = {"public_ip_addresses": [], "route_tables": [], "network_interfaces": [], "route_servers": [], "resources": []}

    def group(self, name):
        self.groups.setdefault(name.lower(), {"name": name, "location": self.location})
        return name

    def vnet(self, rg, name, subnets=(), prefixes=("10.0.0.0/8",)):
        blank = {"resource_group": self.group(rg), "name": name, "address_prefixes": list(prefixes), "subnets": []}
        vnet = self.vnets.setdefault((rg.lower(), name.lower()), blank)
        for subnet_name, prefix in subnets:
            if all(s["name"].lower() != subnet_name.lower() for s in vnet["subnets"]):
                vnet["subnets"].append({"name": subnet_name, "address_prefix": prefix or f"10.0.{len(vnet['subnets']) + 2}.0/24"})

    def resource(self, rg, chain):
        """Make the resource named by chain (all names given) exist."""
        kinds = [kind.lower() for kind, _name in chain]
        names = [name for _kind, name in chain]
        if kinds[0] == "virtualnetworks":
            self.vnet(rg, names[0], [(names[1], None)] if len(names) > 1 else ())
        elif kinds[0] == "publicipaddresses":
            self.lists["public_ip_addresses"].append({"resource_group": self.group(rg), "name": names[0]})
        elif kinds[0] == "networkinterfaces":
            self.vnet(rg, "vnet-example", [("default", None)])
            self.lists["network_interfaces"].append({"resource_group": self.group(rg), "name": names[0], "vnet": "vnet-example", "subnet": "default"})
        elif kinds[0] == "routetables":
            routes = [{"name": names[1], "address_prefix": "10.0.3.0/24", "next_hop_type": "VirtualNetworkGateway"}] if len(names) > 1 else []
            self.lists["route_tables"].append({"resource_group": self.group(rg), "name": names[0], "routes": routes})
        elif kinds[0] == "networksecuritygroups":
            self.group(rg)
            self.lists["resources"].append({"id": self.emu.rid(f"networkSecurityGroups/{names[0]}", group=rg), "body": {"location": self.location}})
        elif kinds[0] == "virtualhubs":
            # a Route Server (hub + ipconfig1 on RouteServerSubnet + public IP), its peer in an NVA subnet of its VNet
            self.vnet(rg, f"vnet-{names[0]}", [("RouteServerSubnet", "10.200.0.0/27"), ("snet-nva", self.peer_net)],
                      prefixes=sorted({"10.200.0.0/24", self.peer_net}))
            peers = [{"name": names[1], "peer_ip": str(ipaddress.IPv4Network(self.peer_net)[10]), "peer_asn": 65001}] \
                if len(names) > 1 and kinds[1] == "bgpconnections" else []
            self.lists["route_servers"].append({"resource_group": self.group(rg), "name": names[0], "vnet": f"vnet-{names[0]}", "peers": peers})

    def topology(self):
        topo = {"subscription_id": self.emu.subscription_id, "tenant_id": self.emu.tenant_id,
                "resource_groups": list(self.groups.values()), "virtual_networks": list(self.vnets.values())}
        topo.update(self.lists)
        return topo


def _ids(value):
    """Every resource id a body refers to."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "id" and isinstance(item, str):
                yield item
            else:
                yield from _ids(item)
    elif isinstance(value, list):
        for item in value:
            yield from _ids(item)


def test_the_facts_hold_the_examples():
    """The replay below has examples to replay, and the exclusions name examples that exist."""
    assert len(EXAMPLES) >= 31 and FACTS["api_version"] == "2025-07-01"
    assert set(EXCLUDED) <= set(EXAMPLES)


@pytest.mark.parametrize("example", EXAMPLES)
def test_official_example_replays_with_a_documented_status(arm_emulator, example):
    if example in EXCLUDED:
        pytest.skip(EXCLUDED[example])
    data = FACTS["examples"][example]
    method, template = data["method"], data["path"]
    params = dict(data["parameters"], subscriptionId=arm_emulator.subscription_id)
    chain = _chain(template, params)
    assert _modelled(chain), f"{template}: a resource type the emulator does not model"
    body = json.loads(json.dumps(data["body"]).replace("{subscriptionId}", arm_emulator.subscription_id)) if "body" in data else None
    seed = _Seed(arm_emulator, (body or {}).get("location") or "westeurope", peer_ip=((body or {}).get("properties") or {}).get("peerIp"))
    rg = params.get("resourceGroupName")
    if rg:
        seed.group(rg)
        resource = [link for link in chain if link[0] not in ("learnedRoutes", "advertisedRoutes")]
        needed = resource[:-1] if method == "PUT" or resource[-1][1] is None else resource  # a PUT creates the last, a list reads the parents
        if needed:
            seed.resource(rg, needed)
    for ref in filter(None, (id_ref(value) for value in _ids(body))):
        seed.resource(ref.rg, list(zip(ref.type_key.split("/"), ref.names)))
    arm_emulator.seed(seed.topology())
    path = re.sub(r"\{(\w+)\}", lambda match: params[match.group(1)], template)
    token = arm_emulator.credential().get_token("https://management.azure.com/.default").token
    answer = requests.request(method, f"{arm_emulator.endpoint}{path}", params={"api-version": FACTS["api_version"]}, json=body,
                              headers={"Authorization": f"Bearer {token}"}, verify=arm_emulator.ca_bundle, timeout=30)
    documented = data["statuses"]
    assert str(answer.status_code) in documented, f"{method} {path}: {answer.status_code} {answer.text[:500]} (documented: {documented})"
