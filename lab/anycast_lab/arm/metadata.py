"""ARM's cloud metadata endpoint (`GET /metadata/endpoints?api-version=...`), describing the emulator as a cloud.

Clients that discover a cloud from a URL (azure-cli's ARM_CLOUD_METADATA_URL, Azure Stack style
`cloud_environment: https://host/metadata/endpoints`) read the ARM endpoint, the login endpoint and
the token audience from it. Shapes as management.azure.com answers them:
- api-version 2019-05-01 and later: a list of clouds, each with `name`, `resourceManager`,
  `authentication.{loginEndpoint, audiences, tenant, identityProvider}` and `suffixes`;
- older api-versions (2015-01-01, what Azure Stack clients ask): one object with `galleryEndpoint`,
  `graphEndpoint`, `portalEndpoint` and `authentication.{loginEndpoint, audiences}`.
Anonymous, like the real one.
"""
CLOUD_NAME = "AnycastLab"
LIST_SINCE = "2019-05-01"


def endpoints(base, api_version):
    """(status, body) for GET /metadata/endpoints."""
    if not api_version:
        return 400, {"error": {"code": "MissingApiVersionParameter",
                               "message": "The api-version query parameter (?api-version=) is required for all requests."}}
    root = base + "/"
    auth = {"loginEndpoint": root, "audiences": [root]}
    if api_version < LIST_SINCE:
        return 200, {"galleryEndpoint": root, "graphEndpoint": root, "portalEndpoint": root, "authentication": auth}
    cloud = {"name": CLOUD_NAME, "resourceManager": root, "portal": root, "gallery": root, "graph": root, "graphAudience": root,
             "authentication": dict(auth, tenant="common", identityProvider="AAD"),
             # Real clouds list DNS suffixes of services the emulator does not have; clients need the key.
             "suffixes": {}}
    return 200, [cloud]
