"""Validation of network security groups (networkSecurityGroups) and their rules (securityRules, embedded in the group's
PUT or written as child resources). validation.py calls these for the two types.

What Azure refuses, with its codes and messages as quoted in public issues (Azure/azure-cli#23499,
hashicorp/terraform-provider-azurerm#11137, #5617, Azure/aks-engine#2106, grycap/im#359, ernestio/ernest#473/#475):
- two rules of a group with the same priority and direction: 400 SecurityRuleConflict ("Security rule A conflicts with
  rule B. Rules cannot have the same Priority and Direction.");
- a port that is not `*`, an integer or `low-high` in 0-65535: 400 SecurityRuleInvalidPortRange;
- an address prefix that is not `*`, a service tag, an IPv4 address or a CIDR without host bits (50.206.209.68/27 is
  refused): 400 SecurityRuleInvalidAddressPrefix;
- `*` or a service tag in the list fields (sourceAddressPrefixes, destinationAddressPrefixes): 400
  SecurityRuleParameterContainsUnsupportedValue;
- a priority outside 100-4096 (the REST API reference's range): 400 SecurityRuleInvalidPriority (the code and message
  Azure CLI users report; not found in Microsoft's own pages).
Missing or unknown enum values (protocol, access, direction) are 400 InvalidRequestFormat here (the emulator's choice).
"""
import copy
import ipaddress
import uuid

from .errors import bad_request
from .fields import check_bool, check_choice, embedded, props_of

PROTOCOLS = ("Tcp", "Udp", "Icmp", "Esp", "*", "Ah")
MIN_PRIORITY, MAX_PRIORITY = 100, 4096
# The service tags the emulator knows (Azure has many more; the default rules use these three).
SERVICE_TAGS = ("VirtualNetwork", "AzureLoadBalancer", "Internet")
MAX_DESCRIPTION = 140
# Every group has these rules, read-only, after its own (as in the NetworkSecurityGroupCreateWithRule example):
# name, description, direction, priority, access, source, destination.
DEFAULT_RULES = (
    ("AllowVnetInBound", "Allow inbound traffic from all VMs in VNET", "Inbound", 65000, "Allow", "VirtualNetwork", "VirtualNetwork"),
    ("AllowAzureLoadBalancerInBound", "Allow inbound traffic from azure load balancer", "Inbound", 65001, "Allow", "AzureLoadBalancer", "*"),
    ("DenyAllInBound", "Deny all inbound traffic", "Inbound", 65500, "Deny", "*", "*"),
    ("AllowVnetOutBound", "Allow outbound traffic from all VMs to all VMs in VNET", "Outbound", 65000, "Allow", "VirtualNetwork", "VirtualNetwork"),
    ("AllowInternetOutBound", "Allow outbound traffic from all VMs to Internet", "Outbound", 65001, "Allow", "*", "Internet"),
    ("DenyAllOutBound", "Deny all outbound traffic", "Outbound", 65500, "Deny", "*", "*"),
)


def validate_nsg(svc, ref, props, existing):  # pylint: disable=unused-argument
    """A group's PUT: its securityRules list is authoritative (rules it leaves out are deleted)."""
    rules = props.pop("securityRules", [])
    checked = []
    for index, rule, rule_ref in embedded(ref, rules, "securityRules", "networkSecurityGroups/securityRules", "Security rule"):
        checked.append((rule_ref, validate_rule(svc, rule_ref, copy.deepcopy(props_of(rule)), None, f"properties.securityRules[{index}].properties")))
    _check_conflicts([(rule_ref.names[1], rule_props) for rule_ref, rule_props in checked])
    # Read-only, computed: never taken from the client.
    for key in ("defaultSecurityRules", "subnets", "networkInterfaces", "flowLogs", "resourceGuid"):
        props.pop(key, None)
    props["resourceGuid"] = (existing or {}).get("properties", {}).get("resourceGuid") or str(uuid.uuid4())
    props["flushConnection"] = bool(check_bool(props, "flushConnection", "properties.flushConnection", False))
    props["_securityRules"] = checked
    return props


def validate_child_rule(svc, ref, props, existing):
    """networkSecurityGroups/{g}/securityRules/{r}: checked against the group's other rules too."""
    rule = validate_rule(svc, ref, props, existing)
    others = [(r["name"], r["properties"]) for r in svc.store.children(ref.parent_id, "securityRules") if r["name"].lower() != ref.names[1].lower()]
    _check_conflicts([(ref.names[1], rule)] + others)
    return rule


def validate_rule(svc, ref, props, existing, field="properties"):  # pylint: disable=unused-argument
    """One rule's properties, as Azure stores them: singular and list fields both present (the list empty when unused)."""
    out = {}
    for key, choices in (("protocol", PROTOCOLS), ("access", ("Allow", "Deny")), ("direction", ("Inbound", "Outbound"))):
        if props.get(key) is None:
            raise bad_request("InvalidRequestFormat", f"Property '{field}.{key}' is required.")
        out[key] = check_choice(props[key], choices, f"{field}.{key}", "InvalidRequestFormat")
    priority = props.get("priority")
    if isinstance(priority, bool) or not isinstance(priority, int) or not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise bad_request("SecurityRuleInvalidPriority", f"Security rule has invalid Priority. Value provided: {priority} Allowed range "
                                                         f"{MIN_PRIORITY}-{MAX_PRIORITY}. (property '{field}.priority')")
    out["priority"] = priority
    description = props.get("description")
    if description is not None:
        if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
            raise bad_request("InvalidRequestFormat", f"Property '{field}.description' must be text of at most {MAX_DESCRIPTION} characters.")
        out["description"] = description
    for side in ("source", "destination"):
        out.update(_ports(props, side, field))
        out.update(_addresses(ref, props, side, field))
        if props.get(f"{side}ApplicationSecurityGroups"):
            raise bad_request("InvalidRequestFormat", f"Property '{field}.{side}ApplicationSecurityGroups': application security groups are "
                                                      "not modelled by the emulator.")
    return out


def _ports(props, side, field):
    single, many = props.get(f"{side}PortRange"), props.get(f"{side}PortRanges") or []
    if single is None and not many:
        raise bad_request("InvalidRequestFormat", f"Property '{field}.{side}PortRange' (or '{side}PortRanges') is required.")
    if not isinstance(many, list):
        raise bad_request("InvalidRequestFormat", f"Property '{field}.{side}PortRanges' must be a list.")
    for value in ([single] if single is not None else []) + many:
        if not _port_range(value):
            raise bad_request("SecurityRuleInvalidPortRange", f"Security rule has invalid Port range. Value provided: {value}. Value should be "
                                                              f"an integer OR integer range with '-' delimiter. Valid range 0-65535. "
                                                              f"(property '{field}.{side}PortRange')")
    out = {f"{side}PortRanges": [str(value) for value in many]}
    if single is not None:
        out[f"{side}PortRange"] = str(single)
    return out


def _port_range(value):
    if value == "*":
        return True
    parts = str(value).split("-") if isinstance(value, (str, int)) and not isinstance(value, bool) else []
    if len(parts) not in (1, 2) or not all(part.isdigit() for part in parts):
        return False
    numbers = [int(part) for part in parts]
    return all(0 <= number <= 65535 for number in numbers) and numbers[0] <= numbers[-1]


def _addresses(ref, props, side, field):
    single, many = props.get(f"{side}AddressPrefix"), props.get(f"{side}AddressPrefixes") or []
    if single is None and not many:
        raise bad_request("InvalidRequestFormat", f"Property '{field}.{side}AddressPrefix' (or '{side}AddressPrefixes') is required.")
    if not isinstance(many, list):
        raise bad_request("InvalidRequestFormat", f"Property '{field}.{side}AddressPrefixes' must be a list.")
    if single is not None and not (single == "*" or single in SERVICE_TAGS or _ipv4_prefix(single)):
        raise bad_request("SecurityRuleInvalidAddressPrefix", f"Security rule {ref.id} has invalid Address prefix. Value provided: {single} "
                                                              f"(property '{field}.{side}AddressPrefix').")
    for value in many:
        if value == "*" or value in SERVICE_TAGS:
            raise bad_request("SecurityRuleParameterContainsUnsupportedValue",
                              f"Security rule parameter {side[0].upper()}{side[1:]}AddressPrefixes for rule with Id {ref.id} cannot specify "
                              f"existing VIRTUALNETWORK, INTERNET, AZURELOADBALANCER, '*' or system tags. Unsupported value used: {value}.")
        if not _ipv4_prefix(value):
            raise bad_request("SecurityRuleInvalidAddressPrefix", f"Security rule {ref.id} has invalid Address prefix. Value provided: {value} "
                                                                  f"(property '{field}.{side}AddressPrefixes').")
    out = {f"{side}AddressPrefixes": list(many)}
    if single is not None:
        out[f"{side}AddressPrefix"] = single
    return out


def _ipv4_prefix(value):
    """An IPv4 address or a CIDR prefix without host bits."""
    try:
        return isinstance(value, str) and bool(ipaddress.IPv4Network(value, strict=True))
    except ValueError:
        return False


def _check_conflicts(rules):
    """(name, properties) of a group's rules: no two with the same priority and direction."""
    seen = {}
    for name, rule in rules:
        key = (rule["priority"], rule["direction"])
        if key in seen:
            raise bad_request("SecurityRuleConflict", f"Security rule {seen[key]} conflicts with rule {name}. Rules cannot have the same Priority "
                                                      "and Direction. To learn more, see aka.ms/nsgrules.")
        seen[key] = name


def default_rules(nsg_id, state):
    """The group's defaultSecurityRules as a client sees them."""
    rules = []
    for name, description, direction, priority, access, source, destination in DEFAULT_RULES:
        rules.append({"name": name, "id": f"{nsg_id}/defaultSecurityRules/{name}", "type": "Microsoft.Network/networkSecurityGroups/defaultSecurityRules",
                      "properties": {"provisioningState": state, "description": description, "protocol": "*", "sourcePortRange": "*",
                                     "destinationPortRange": "*", "sourceAddressPrefix": source, "destinationAddressPrefix": destination,
                                     "sourceAddressPrefixes": [], "destinationAddressPrefixes": [], "sourcePortRanges": [],
                                     "destinationPortRanges": [], "access": access, "priority": priority, "direction": direction}})
    return rules
