"""Where a Microsoft.Network resource lives: the types the emulator models, the path grammar, resource ids.

Every resource (children too: subnets, routes, security rules, hub ipConfigurations, bgpConnections) is stored flat
under its lower-cased id, so one parser serves request paths and the ids given inside bodies.
"""

PROVIDER = "Microsoft.Network"
# ARM type name -> (parent type or None, name of the ARM type for bodies).
TYPES = {
    "virtualNetworks": None,
    "virtualNetworks/subnets": "virtualNetworks",
    "networkInterfaces": None,
    "publicIPAddresses": None,
    "virtualHubs": None,
    "virtualHubs/ipConfigurations": "virtualHubs",
    "virtualHubs/bgpConnections": "virtualHubs",
    "routeTables": None,
    "routeTables/routes": "routeTables",
    "networkSecurityGroups": None,
    "networkSecurityGroups/securityRules": "networkSecurityGroups",
}
_CANONICAL = {key.lower(): key for key in TYPES}


class Ref:  # pylint: disable=too-few-public-methods
    """A parsed resource address: subscription, resource group, type and names."""

    def __init__(self, sub, rg, type_key, names):
        self.sub, self.rg, self.type_key, self.names = sub, rg, type_key, names
        parts = type_key.split("/")
        path = "/".join(f"{part}/{name}" for part, name in zip(parts, names))
        self.group_id = f"/subscriptions/{sub}/resourceGroups/{rg}"
        self.id = f"{self.group_id}/providers/{PROVIDER}/{path}" if len(names) == len(parts) else None
        self.collection = len(names) < len(parts)
        self.parent_id = None
        if len(parts) == 2:
            self.parent_id = f"{self.group_id}/providers/{PROVIDER}/{parts[0]}/{names[0]}"

    @property
    def top_id(self):
        """The top-level resource (a VNet for a subnet, a hub for a bgpConnection)."""
        return self.parent_id or self.id


def parse_provider_path(sub, rg, segments):
    """segments after providers/Microsoft.Network/ -> (Ref, action) or None when unknown."""
    if not segments:
        return None
    top = _CANONICAL.get(segments[0].lower())
    if top is None or TYPES[top] is not None:
        return None
    if len(segments) <= 2:
        return Ref(sub, rg, top, segments[1:2]), None
    child = _CANONICAL.get(f"{top}/{segments[2]}".lower())
    if child is None:
        return None
    if len(segments) <= 4:
        return Ref(sub, rg, child, [segments[1]] + segments[3:4]), None
    if len(segments) == 5 and child == "virtualHubs/bgpConnections" and segments[4].lower() in ("learnedroutes", "advertisedroutes"):
        action = "learned" if segments[4].lower() == "learnedroutes" else "advertised"
        return Ref(sub, rg, child, [segments[1], segments[3]]), action
    return None


def id_ref(resource_id):
    """Parse a full resource id given inside a body (subnet.id, routeTable.id ...); None if malformed."""
    parts = resource_id.strip("/").split("/")
    if len(parts) < 8 or parts[0].lower() != "subscriptions" or parts[2].lower() != "resourcegroups" \
            or parts[4].lower() != "providers" or parts[5].lower() != PROVIDER.lower():
        return None
    parsed = parse_provider_path(parts[1], parts[3], parts[6:])
    if parsed is None or parsed[1] is not None or parsed[0].collection:
        return None
    return parsed[0]


def arm_type(type_key):
    return f"{PROVIDER}/{type_key}"
