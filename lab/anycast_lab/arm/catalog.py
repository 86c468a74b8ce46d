"""What the emulated subscription offers: its locations and the Microsoft.Network api-versions the emulator serves.

ARM refuses an api-version a resource provider does not serve (400 NoRegisteredProviderFound) and a location a
resource type is not offered in (400 LocationNotAvailableForResourceType); the emulator does the same, so a typo
such as `location: marsnorth` fails here as it would in Azure instead of creating a resource nobody can reach.
"""
from .errors import bad_request

# Azure public cloud regions (name, display name); the subscription offers every one of them.
LOCATIONS = (
    ("australiaeast", "Australia East"), ("brazilsouth", "Brazil South"), ("canadacentral", "Canada Central"),
    ("centralindia", "Central India"), ("centralus", "Central US"), ("eastasia", "East Asia"), ("eastus", "East US"),
    ("eastus2", "East US 2"), ("francecentral", "France Central"), ("germanywestcentral", "Germany West Central"),
    ("japaneast", "Japan East"), ("koreacentral", "Korea Central"), ("northcentralus", "North Central US"),
    ("northeurope", "North Europe"), ("norwayeast", "Norway East"), ("southafricanorth", "South Africa North"),
    ("southcentralus", "South Central US"), ("southeastasia", "Southeast Asia"), ("swedencentral", "Sweden Central"),
    ("switzerlandnorth", "Switzerland North"), ("uaenorth", "UAE North"), ("uksouth", "UK South"), ("ukwest", "UK West"),
    ("westcentralus", "West Central US"), ("westeurope", "West Europe"), ("westus", "West US"), ("westus2", "West US 2"),
    ("westus3", "West US 3"),
)
# Stable Microsoft.Network api-versions the emulator answers (bodies are shaped on 2025-07-01). azure-mgmt-network 33.x
# sends 2026-03-01 (and 2018-10-01 for a few operations); older clients such as azure.azcollection send older ones.
NETWORK_API_VERSIONS = frozenset((
    "2018-10-01", "2018-11-01", "2018-12-01", "2019-02-01", "2019-04-01", "2019-06-01", "2019-07-01", "2019-08-01",
    "2019-09-01", "2019-11-01", "2019-12-01", "2020-03-01", "2020-04-01", "2020-05-01", "2020-06-01", "2020-07-01",
    "2020-08-01", "2020-11-01", "2021-02-01", "2021-03-01", "2021-05-01", "2021-08-01", "2022-01-01", "2022-05-01",
    "2022-07-01", "2022-09-01", "2022-11-01", "2023-02-01", "2023-04-01", "2023-05-01", "2023-06-01", "2023-09-01",
    "2023-11-01", "2024-01-01", "2024-03-01", "2024-05-01", "2024-07-01", "2024-10-01", "2025-01-01", "2025-03-01",
    "2025-05-01", "2025-07-01", "2026-03-01",
))
_NAMES = {location[0] for location in LOCATIONS}


def normalised(location):
    """'West Europe' and 'westeurope' are the same location to ARM."""
    return (location or "").replace(" ", "").lower()


def check_api_version(api_version, type_key, location="westeurope"):
    if api_version not in NETWORK_API_VERSIONS:
        newest = ", ".join(sorted(NETWORK_API_VERSIONS, reverse=True)[:5])
        raise bad_request("NoRegisteredProviderFound", f"No registered resource provider found for location '{location}' and API version "
                                                       f"'{api_version}' for type '{type_key}'. The supported api-versions are '{newest}, ...'.")


def check_location(location, type_key):
    if normalised(location) not in _NAMES:
        raise bad_request("LocationNotAvailableForResourceType", f"The provided location '{location}' is not available for resource type "
                                                                 f"'Microsoft.Network/{type_key}'. List of available regions for the resource "
                                                                 f"type is '{','.join(sorted(_NAMES))}'.")


def locations_body(sub_id):
    """GET /subscriptions/{id}/locations, as Microsoft.Resources answers it (the fields clients read)."""
    return {"value": [{"id": f"/subscriptions/{sub_id}/locations/{name}", "name": name, "displayName": display,
                       "metadata": {"regionType": "Physical"}} for name, display in LOCATIONS]}
