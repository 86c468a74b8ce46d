"""Checks of single body fields, shared by every type's validation: each error names the field, as ARM does."""
import ipaddress

from .addressing import Ref, arm_type, id_ref
from .errors import bad_request

# ASNs Azure keeps for itself; a BGP peer may not use them.
RESERVED_ASNS = [(8074, 8075), (12076, 12076), (23456, 23456), (64496, 64511), (65515, 65515), (65517, 65520), (65535, 65551)]


def props_of(body):
    """A body's `properties` (an object, or a 400)."""
    props = body.get("properties", {})
    if not isinstance(props, dict):
        raise bad_request("InvalidRequestFormat", "Property 'properties' must be an object.")
    return props


def check_ipv4(value, field, code="InvalidIPAddress"):
    try:
        if not isinstance(value, str):  # ipaddress would take an integer
            raise TypeError(value)
        return str(ipaddress.IPv4Address(value))
    except (ipaddress.AddressValueError, ValueError, TypeError) as exc:
        raise bad_request(code, f"Value '{value}' of property '{field}' is not a valid IPv4 address.") from exc


def check_prefix(value, field, code="InvalidAddressPrefixFormat"):
    try:
        if not isinstance(value, str):
            raise TypeError(value)
        net = ipaddress.IPv4Network(value, strict=True)
    except (ipaddress.AddressValueError, ipaddress.NetmaskValueError, ValueError, TypeError) as exc:
        raise bad_request(code, f"Value '{value}' of property '{field}' is not a valid IPv4 address prefix in CIDR notation "
                                "(host bits must be zero).") from exc
    return str(net)


def check_bool(props, key, field, default=None):
    value = props.get(key, default)
    if value is not None and not isinstance(value, bool):
        raise bad_request("InvalidRequestFormat", f"Property '{field}' must be a boolean, got {value!r}.")
    return value


def check_choice(value, choices, field, code):
    if value is None:
        return None
    match = next((choice for choice in choices if isinstance(value, str) and choice.lower() == value.lower()), None)
    if match is None:
        raise bad_request(code, f"Value '{value}' of property '{field}' is invalid. Allowed values: {', '.join(choices)}.")
    return match


def check_ref(store, value, field, type_key, owner_id):
    """A {"id": ...} reference to an existing resource of type_key; returns the canonical stored id."""
    if not isinstance(value, dict) or not isinstance(value.get("id"), str):
        raise bad_request("InvalidRequestFormat", f"Property '{field}' must be an object with an 'id'.")
    ref = id_ref(value["id"])
    target = store.get(value["id"]) if ref and ref.type_key == type_key else None
    if target is None:
        raise bad_request("InvalidResourceReference", f"Resource {value['id']} referenced by resource {owner_id} was not found. "
                                                      f"Property '{field}' must reference an existing {arm_type(type_key)}.")
    return target["id"]


def reserved_asn(asn):
    return any(low <= asn <= high for low, high in RESERVED_ASNS)


def embedded(ref, items, key, child_type, label):
    """The children a PUT embeds (VNet.subnets, routeTable.routes, NSG.securityRules): a list of objects with unique names (in any letter
    case). Yields (index, item, the child's Ref), each before the next item is looked at, for the caller to validate."""
    if not isinstance(items, list):
        raise bad_request("InvalidRequestFormat", f"Property 'properties.{key}' must be a list.")
    names = set()
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not item.get("name"):
            raise bad_request("InvalidRequestFormat", f"Property 'properties.{key}[{index}].name' is required.")
        if item["name"].lower() in names:
            raise bad_request("DuplicateResourceName", f"{label} name '{item['name']}' appears twice in 'properties.{key}'.")
        names.add(item["name"].lower())
        yield index, item, Ref(ref.sub, ref.rg, child_type, [ref.names[0], item["name"]])
