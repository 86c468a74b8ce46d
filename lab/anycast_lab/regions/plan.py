"""The two-region lab's address plan: one place for every name, address and ASN the lab uses.

docs/dev/conventions.md fixes the Azure-side addresses; the transit links (ExpressRoute edge,
on-premises) are the lab's own choice. Everything here lives between lab namespaces, never in the
root namespace, except the management bridge the host machinery owns.

The lab's size, its number of NVAs per region (1 to 8, default 2), is a parameter: `up --nvas N` or
$ANYCAST_LAB_NVAS, N for both regions or one number per region (`--nvas westeurope=1,northeurope=2`).
`up` records it in the lab dir (size.json), and every later reader of the plan in any process (the CLI, the
emulator's hooks, the tests) follows that record while the lab is up.
"""
import dataclasses
import ipaddress
import json
import os
from dataclasses import dataclass

from ..hosts.util import LabError
from ..paths import lab_dir

PREFIX = "anl-lab"  # topology prefix: node NAME lives in namespace "anl-lab.NAME" (hosts machinery naming)
SUBSCRIPTION_ID = "3c6e7f5a-0a11-4c1e-9d7a-6e0b5a7c1a10"
TENANT_ID = "8f2b1c3d-4e5f-4a6b-9c7d-0e1f2a3b4c5d"
CLIENT_ID = "5d0c7a2e-8b91-4f3a-a6c4-2e9d1b7f0a33"
CLIENT_SECRET = "lab-only-secret-not-for-production"  # the lab's service principal; the emulator is its only audience
ANYCAST_IP = "10.250.0.10"
NVA_ASN = 65001
RS_ASN = 65515
ER_ASN = 12076
ONPREM_ASN = 65020
ONPREM_PREFIX = "172.16.0.0/16"
CLIENT_NET = "172.16.1.0/24"
CLIENT_IP = "172.16.1.10"
CLIENT_GW = "172.16.1.1"
BACKEND_PORT = 80

# NVAs per region. Route Server peers with at most 8 NVAs (the emulator refuses a 9th bgpConnection,
# VirtualHubBgpConnectionLimitReached, as Azure does); the region's test VM is one more peer, so with
# 8 NVAs registered it cannot peer as well. conntrack_sync takes 1-7 peers: 8 NVAs per region at most.
# A region of one NVA has no state sync (playbooks/nva.yml does not configure conntrack_sync there).
DEFAULT_NVAS = 2
MIN_NVAS = 1
# Last octet of NVA n (1-based) in snet-nva and snet-sync: .4, .5, ... skipping .10, the test VM's.
NVA_HOST_OCTETS = (4, 5, 6, 7, 8, 9, 11, 12)
MAX_NVAS = len(NVA_HOST_OCTETS)
NVAS_ENV = "ANYCAST_LAB_NVAS"
SIZE_FILE = "size.json"  # in the lab dir, written by `up`, removed by `down`


def check_nvas(value, where="the number of NVAs per region"):
    """`value` as an int in MIN_NVAS..MAX_NVAS, else LabError naming `where`."""
    try:
        count = int(str(value).strip())
    except ValueError:
        raise LabError(f"{where}: {value!r} is not a number (use {MIN_NVAS} to {MAX_NVAS})") from None
    if not MIN_NVAS <= count <= MAX_NVAS:
        raise LabError(f"{where}: {count} is out of range: {MIN_NVAS} to {MAX_NVAS} NVAs per region (Route Server peers with at most {MAX_NVAS})")
    return count


def parse_sizes(value, where="the number of NVAs per region"):
    """The lab's size as {region name: NVAs}, from N (every region), 'westeurope=1,northeurope=2' (a region not
    named gets DEFAULT_NVAS; short names work: 'we=1'), or such a dict. LabError naming `where` otherwise."""
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, int) or "=" not in str(value):
        count = check_nvas(value, where)
        return {item.name: count for item in REGIONS}
    else:
        items = []
        for part in str(value).split(","):
            name, sep, count = part.partition("=")
            if not sep:
                raise LabError(f"{where}: {part.strip()!r} is not REGION=N (e.g. westeurope=1,northeurope=2)")
            items.append((name, count))
    sizes = {item.name: DEFAULT_NVAS for item in REGIONS}
    named = set()
    for name, count in items:
        try:
            key = region(str(name).strip()).name
        except KeyError:
            raise LabError(f"{where}: no lab region {str(name).strip()!r} (the regions: {', '.join(item.name for item in REGIONS)})") from None
        if key in named:
            raise LabError(f"{where}: {key} is given twice")
        named.add(key)
        sizes[key] = check_nvas(count, f"{where}: {key}")
    return sizes


def uniform(sizes):
    """N when every region of `sizes` has N NVAs, else None."""
    counts = set(sizes.values())
    return counts.pop() if len(counts) == 1 else None


def spelled(sizes):
    """`sizes` as `--nvas` takes it: '2', or 'westeurope=1,northeurope=2'."""
    same = uniform(sizes)
    return str(same) if same is not None else ",".join(f"{name}={count}" for name, count in sizes.items())


def nvas_text(count):
    """'1 NVA', '2 NVAs'."""
    return f"{count} NVA{'s' if count != 1 else ''}"


def described(sizes):
    """`sizes` for people: '2 NVAs per region', or 'westeurope 1 NVA, northeurope 2 NVAs'."""
    same = uniform(sizes)
    if same is not None:
        return f"{nvas_text(same)} per region"
    return ", ".join(f"{name} {nvas_text(count)}" for name, count in sizes.items())


def requested_nvas(value=None):
    """The size asked for, as {region name: NVAs}: `value` if given, else $ANYCAST_LAB_NVAS, else DEFAULT_NVAS (checked)."""
    if value is not None:
        return parse_sizes(value)
    env = os.environ.get(NVAS_ENV, "").strip()
    return parse_sizes(env, f"${NVAS_ENV}") if env else parse_sizes(DEFAULT_NVAS)


def size_file(base=None):
    return os.path.join(base or lab_dir(), SIZE_FILE)


def recorded_nvas(base=None):
    """The size ({region name: NVAs}) the lab in `base` (default: lab_dir()) was brought up with, or None when it recorded none (down)."""
    try:
        with open(size_file(base), encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise LabError(f"{size_file(base)}: unreadable ({exc}); `python -m anycast_lab down` removes it") from None
    if not isinstance(data, dict) or data.get("nvas") is None:
        raise LabError(f"{size_file(base)}: no size recorded in it; `python -m anycast_lab down` removes it")
    return parse_sizes(data["nvas"], size_file(base))


def record_nvas(value, base=None):
    """Record the size `up` brings the lab up with: {"nvas": N} when every region has N NVAs, else {"nvas": {region: N}}."""
    sizes = parse_sizes(value)
    same = uniform(sizes)
    path = size_file(base)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump({"nvas": same if same is not None else sizes}, handle)
        handle.write("\n")
    os.replace(path + ".tmp", path)


def lab_nvas(base=None):
    """The lab's size, {region name: NVAs}: what the lab in `base` recorded while it is up, else the requested size."""
    recorded = recorded_nvas(base)
    return recorded if recorded is not None else requested_nvas()


@dataclass(frozen=True)
class Nic:
    """A VM's NIC in a region: its ARM name, its address and the fabric port it hangs off."""
    name: str          # ARM resource name of the NIC
    vm: str            # host or namespace name (without the lab prefix)
    subnet: str        # ARM subnet name
    vnet: str          # ARM VNet name
    ip: str
    port: str          # interface name on the region's fabric side (<= 15 chars)
    forwarding: bool   # enableIPForwarding in the seed


@dataclass(frozen=True)
class Region:  # pylint: disable=too-many-instance-attributes
    """One Azure region of the lab: a hub with Route Server and NVAs, a spoke with the application."""
    name: str           # Azure location, e.g. westeurope
    short: str          # two letters used in names: we, ne
    octet: int          # second octet of the hub VNet (10.<octet>.0.0/16); the spoke is octet + 1
    er_link: str        # fabric <-> ExpressRoute edge transit /29: .1/.2 Route Server instances, .6 edge
    onprem_link: str    # ExpressRoute edge <-> on-premises router /30: .1 edge, .2 on-premises
    # NVAs in this region; None = the lab's size for it (lab_nvas()), read when asked. Not part of equality.
    nva_count: int = dataclasses.field(default=None, compare=False)

    @property
    def size(self):
        """Number of NVAs in this region."""
        return self.nva_count if self.nva_count is not None else lab_nvas()[self.name]

    def sized(self, count):
        """This region with `count` NVAs (checked), whatever the running lab's size."""
        return dataclasses.replace(self, nva_count=check_nvas(count))

    @property
    def resource_group(self):
        return f"rg-anycast-{self.name}"

    @property
    def hub_vnet(self):
        return f"vnet-hub-{self.short}"

    @property
    def spoke_vnet(self):
        return f"vnet-spoke-{self.short}"

    @property
    def route_server(self):
        return f"rs-{self.short}"

    @property
    def hub_prefix(self):
        return f"10.{self.octet}.0.0/16"

    @property
    def spoke_prefix(self):
        return f"10.{self.octet + 1}.0.0/16"

    @property
    def subnets(self):
        """(vnet, subnet name, prefix) of every subnet the seed creates."""
        hub, spoke = self.hub_vnet, self.spoke_vnet
        return [(hub, "RouteServerSubnet", f"10.{self.octet}.1.0/27"),
                (hub, "snet-nva", f"10.{self.octet}.2.0/24"),
                (hub, "snet-sync", f"10.{self.octet}.3.0/24"),
                (spoke, "snet-app", f"10.{self.octet + 1}.1.0/24")]

    @property
    def rs_ips(self):
        """virtualRouterIps: instance 0 and instance 1."""
        return [f"10.{self.octet}.1.4", f"10.{self.octet}.1.5"]

    @property
    def nvas(self):
        """The NVA hosts, nva1..nvaN: (host name, NVA-subnet address, sync address, management address)."""
        return [(f"{self.short}-nva{i}", f"10.{self.octet}.2.{host}", f"10.{self.octet}.3.{host}", f"198.18.0.{self.octet + i}")
                for i, host in enumerate(NVA_HOST_OCTETS[:self.size], start=1)]

    @property
    def backend_ip(self):
        return f"10.{self.octet + 1}.1.4"

    @property
    def testvm_ip(self):
        """A spare VM in the NVA subnet that the end-to-end tests drive directly (BGP, forwarding)."""
        return f"10.{self.octet}.2.10"

    @property
    def nics(self):
        """Every NIC the fabric serves, in ARM and on the wire."""
        hub, spoke = self.hub_vnet, self.spoke_vnet
        nics = [Nic(f"nic-{host}", host, "snet-nva", hub, ip, f"nic-nva{i}", False)
                for i, (host, ip, _sync, _mgmt) in enumerate(self.nvas, start=1)]
        nics.append(Nic(f"nic-{self.short}-testvm", f"{self.short}-testvm", "snet-nva", hub, self.testvm_ip, "nic-testvm", False))
        nics.append(Nic(f"nic-{self.short}-app", f"{self.short}-app", "snet-app", spoke, self.backend_ip, "nic-app", True))
        return nics

    @property
    def fabric_ns(self):
        """The region's VNet fabric (hub and peered spoke) and its Route Server speakers share this namespace."""
        return ns(f"{self.short}-hub")

    def er_addr(self, index):
        """Address on the edge transit link: 0, 1 = Route Server instances, 'edge' = ExpressRoute edge."""
        net = ipaddress.ip_network(self.er_link)
        return str(net.network_address + (6 if index == "edge" else index + 1))

    def onprem_addr(self, side):
        net = ipaddress.ip_network(self.onprem_link)
        return str(net.network_address + (1 if side == "edge" else 2))


REGIONS = [
    Region("westeurope", "we", 10, "192.168.10.0/29", "192.168.110.0/30"),
    Region("northeurope", "ne", 20, "192.168.20.0/29", "192.168.120.0/30"),
]


def regions(nvas=None):
    """The regions with a fixed size: `nvas` (N each, 'westeurope=1,northeurope=2' or a dict; checked), or the lab's
    size now (lab_nvas()) when None."""
    sizes = lab_nvas() if nvas is None else parse_sizes(nvas)
    return [item.sized(sizes[item.name]) for item in REGIONS]


def ns(node):
    """Namespace of a lab node."""
    return f"{PREFIX}.{node}"


EDGE_NS = ns("er")
ONPREM_NS = ns("onprem")
CLIENT_NS = ns("client")


def region(name):
    """A region by location (case-insensitive, spaces ignored: 'West Europe' works) or short name; a Region is returned as is."""
    if isinstance(name, Region):
        return name
    key = name.replace(" ", "").lower()
    for item in REGIONS:
        if key in (item.name, item.short):
            return item
    raise KeyError(f"no lab region {name!r}")
