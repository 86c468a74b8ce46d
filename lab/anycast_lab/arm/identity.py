"""Entra ID (Azure AD) emulation: just enough of the v2.0 endpoints for MSAL / azure-identity.

What MSAL 1.x asks for, read from msal/authority.py and msal/oauth2cli:
- GET {authority}/v2.0/.well-known/openid-configuration (tenant discovery; always);
- GET https://<host>/common/discovery/instance?authorization_endpoint=...&api-version=1.0 only when
  instance discovery is on; azure-identity sends it to login.microsoftonline.com unless the credential
  gets disable_instance_discovery=True, so clients of the emulator must pass that. We answer it too,
  for clients that point MSAL's instance_discovery at us;
- POST {token_endpoint} form: grant_type=client_credentials, client_id, client_secret, scope.
Access tokens are HS256 JWTs signed with the state's key, so they survive a restart.
"""
import base64
import hashlib
import hmac
import json
import time
import uuid

from .errors import ArmError

TOKEN_LIFETIME = 3599
# Audiences ARM accepts: the public-cloud ARM resource ids (the SDK's default scope) and the emulator itself.
ARM_AUDIENCES = ("https://management.azure.com", "https://management.core.windows.net")


def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(key_hex, claims):
    header = _b64(json.dumps({"typ": "JWT", "alg": "HS256"}).encode())
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    mac = hmac.new(bytes.fromhex(key_hex), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(mac)}"


def verify(key_hex, token):
    """Claims of a token we signed, or None when it is malformed or forged (expiry is the caller's call)."""
    try:
        header, payload, mac = token.split(".")
        expected = hmac.new(bytes.fromhex(key_hex), f"{header}.{payload}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(_unb64(mac), expected):
            return None
        return json.loads(_unb64(payload))
    except (ValueError, TypeError):
        return None


def _aad_error(status, error, aadsts, description):
    """An AAD error body as login.microsoftonline.com returns it (MSAL shows error_description)."""
    trace = str(uuid.uuid4())
    return status, {
        "error": error,
        "error_description": f"AADSTS{aadsts}: {description} Trace ID: {trace} Correlation ID: {uuid.uuid4()} Timestamp: "
                             f"{time.strftime('%Y-%m-%d %H:%M:%SZ', time.gmtime())}",
        "error_codes": [aadsts],
        "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
        "trace_id": trace,
        "correlation_id": str(uuid.uuid4()),
    }


def known_tenant(state, tenant):
    return any(sp["tenant_id"].lower() == tenant.lower() for sp in state["service_principals"])


def openid_configuration(base, state, tenant):
    """The tenant discovery document (v2.0), pointing every endpoint back at the emulator."""
    if not known_tenant(state, tenant):
        return _aad_error(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID.")
    root = f"{base}/{tenant}"
    return 200, {
        "token_endpoint": f"{root}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "jwks_uri": f"{root}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{root}/v2.0",
        "request_uri_parameter_supported": False,
        "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
        "end_session_endpoint": f"{root}/oauth2/v2.0/logout",
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "oid", "appid"],
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
    }


def instance_discovery(base, query):
    """/common/discovery/instance: tells MSAL where the tenant discovery document lives."""
    endpoint = (query.get("authorization_endpoint") or [""])[0]
    # authorization_endpoint is https://host/{tenant}/oauth2/v2.0/authorize
    parts = endpoint.split("/")
    tenant = parts[3] if len(parts) > 3 else "common"
    host = base.split("://", 1)[1]
    return 200, {
        "tenant_discovery_endpoint": f"{base}/{tenant}/v2.0/.well-known/openid-configuration",
        "api-version": "1.1",
        "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
    }


def _basic_auth(header):
    """client_secret_basic: Authorization: Basic base64(client_id:secret)."""
    if not header or not header.lower().startswith("basic "):
        return None, None
    try:
        client_id, secret = (base64.b64decode(header[6:]).decode().split(":", 1) + [""])[:2]
        return client_id, secret
    except ValueError:
        return None, None


def issue_token(base, state, tenant, form, authorization=None):
    """The token endpoint: client-credentials grant for a seeded service principal."""
    form = {key: values[0] for key, values in form.items()}
    basic_id, basic_secret = _basic_auth(authorization)
    client_id = form.get("client_id") or basic_id
    secret = form.get("client_secret") or basic_secret
    if not known_tenant(state, tenant):
        return _aad_error(400, "invalid_request", 90002, f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID.")
    if form.get("grant_type") != "client_credentials":
        return _aad_error(400, "unsupported_grant_type", 70003,
                          f"The app requested an unsupported grant type '{form.get('grant_type')}'. The emulator supports client_credentials only.")
    if "client_assertion" in form:
        return _aad_error(401, "invalid_client", 700027, "Client assertions (certificates) are not supported by the emulator; use a client secret.")
    principal = next((sp for sp in state["service_principals"]
                      if sp["tenant_id"].lower() == tenant.lower() and sp["client_id"].lower() == (client_id or "").lower()), None)
    if principal is None:
        return _aad_error(400, "unauthorized_client", 700016,
                          f"Application with identifier '{client_id}' was not found in the directory '{tenant}'.")
    if not secret:
        return _aad_error(401, "invalid_client", 7000216,
                          "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.")
    if not hmac.compare_digest(secret.encode(), principal["client_secret"].encode()):
        return _aad_error(401, "invalid_client", 7000215,
                          f"Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, "
                          f"not the client secret ID, for a secret added to app '{principal['client_id']}'.")
    scope = form.get("scope", "")
    resource = next((item[: -len("/.default")] for item in scope.split() if item.endswith("/.default")), None)
    if resource is None:
        return _aad_error(400, "invalid_scope", 1002012, f"The provided value for scope {scope!r} is not valid. Client credential flows must have a "
                                                         "scope value with /.default suffixed to the resource identifier.")
    now = int(time.time())
    claims = {"aud": resource.rstrip("/"), "iss": f"{base}/{tenant}/v2.0", "iat": now, "nbf": now, "exp": now + TOKEN_LIFETIME,
              "tid": principal["tenant_id"], "appid": principal["client_id"], "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, principal["client_id"])),
              "idtyp": "app", "ver": "2.0"}
    return 200, {"token_type": "Bearer", "expires_in": TOKEN_LIFETIME, "ext_expires_in": TOKEN_LIFETIME,
                 "access_token": sign(state["signing_key"], claims)}


def check_bearer(base, state, authorization, subscription_tenant):
    """Claims of a valid ARM bearer token, or raise the 401 ARM gives.

    subscription_tenant: the tenant owning the addressed subscription (None when unknown).
    """
    def fail(code, message):
        challenge = f'Bearer authorization_uri="{base}/{subscription_tenant or "common"}", error="invalid_token", error_description="{message}"'
        return ArmError(401, code, message, {"WWW-Authenticate": challenge})

    if not authorization:
        raise fail("InvalidAuthenticationToken", "The access token is missing: the 'Authorization' header is required.")
    scheme, token = (authorization.split(" ", 1) + [""])[:2]
    if scheme.lower() != "bearer" or not token:
        raise fail("InvalidAuthenticationToken", "The 'Authorization' header must use the Bearer scheme.")
    claims = verify(state["signing_key"], token.strip())
    if claims is None:
        raise fail("InvalidAuthenticationToken", "The access token is invalid.")
    if claims.get("exp", 0) < time.time():
        raise fail("ExpiredAuthenticationToken", "The access token expiry UTC time is earlier than current UTC time.")
    if claims.get("aud", "").rstrip("/") not in ARM_AUDIENCES + (base,):
        raise fail("InvalidAuthenticationTokenAudience", f"The access token has been obtained for wrong audience or resource '{claims.get('aud')}'.")
    if subscription_tenant and claims.get("tid", "").lower() != subscription_tenant.lower():
        raise fail("InvalidAuthenticationTokenTenant",
                   f"The access token is from the wrong issuer '{claims.get('iss')}'. It must match the tenant associated with this subscription.")
    return claims
