# -*- coding: utf-8 -*-
# Copyright: (c) 2026, anycast.nva maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One Azure Resource Manager session per module run.

Everything that talks to Azure goes through ArmSession: it builds the credential and
the azure-mgmt-network client, bounds every retry and wait by the module's `timeout`,
retries writes Azure refuses only because the hub is busy, waits for long-running
operations, turns SDK exceptions into AnycastError (with Azure's code and message and
the option at fault) and never writes in check mode.

Resources are handled as plain ARM JSON dicts (camelCase, as the REST API and its
examples show them): the SDK's models are converted with as_dict() on the way in and
built from those dicts on the way out, so the rest of the code does not depend on the
SDK's model classes, whose shape changed between major versions.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import random
import time
import traceback

from ansible.module_utils.basic import env_fallback, missing_required_lib

from ansible_collections.anycast.nva.plugins.module_utils.errors import AnycastError

try:
    from azure.core.exceptions import (
        AzureError,
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
        ServiceResponseTimeoutError,
    )
    from azure.core.pipeline.policies import RetryPolicy
    from azure.mgmt.network import NetworkManagementClient
    from azure.mgmt.network import models as network_models
    from azure import identity
except ImportError:
    HAS_AZURE = False
    AZURE_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_AZURE = True
    AZURE_IMPORT_ERROR = None

DEFAULT_ARM_ENDPOINT = "https://management.azure.com"
DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"

# Azure refuses these writes only because the hub is busy or not ready yet: wait and retry.
RETRYABLE_CODES = (
    "AnotherOperationInProgress",
    "HubBgpConnectionParentHubMustHaveProvisionedRoutingState",
)
# Fallback interval between polls of a long-running operation; Azure's Retry-After wins.
POLL_INTERVAL = 2
# Longest single pause between two attempts of a refused write.
MAX_BACKOFF = 10
# Longest wait for one answer (less when the module's timeout runs out sooner).
READ_TIMEOUT = 120

# Option names and types; the documentation lives in the anycast.nva.azure doc fragment.
AZURE_ARGUMENT_SPEC = dict(
    subscription_id=dict(type="str", fallback=(env_fallback, ["AZURE_SUBSCRIPTION_ID"])),
    auth_source=dict(type="str", default="auto", choices=["auto", "cli", "msi", "env", "credentials"]),
    client_id=dict(type="str", fallback=(env_fallback, ["AZURE_CLIENT_ID"])),
    secret=dict(type="str", no_log=True, fallback=(env_fallback, ["AZURE_CLIENT_SECRET", "AZURE_SECRET"])),
    tenant=dict(type="str", fallback=(env_fallback, ["AZURE_TENANT_ID", "AZURE_TENANT"])),
    arm_endpoint=dict(type="str", default=DEFAULT_ARM_ENDPOINT),
    authority_host=dict(type="str", fallback=(env_fallback, ["AZURE_AUTHORITY_HOST"])),
    ca_bundle=dict(type="path"),
    timeout=dict(type="int", default=1800),
)

# Error codes that point at a module option rather than at the resource being handled.
_FIELD_OF_CODE = {
    "ResourceGroupNotFound": "resource_group",
    "SubscriptionNotFound": "subscription_id",
    "InvalidSubscriptionId": "subscription_id",
    "InvalidAuthenticationToken": "auth_source",
    "ExpiredAuthenticationToken": "auth_source",
    "AuthenticationFailed": "auth_source",
}


def argument_spec(**module_options):
    """The module's own options plus the common Azure options (fresh copies)."""
    spec = copy.deepcopy(AZURE_ARGUMENT_SPEC)
    spec.update(copy.deepcopy(module_options))
    return spec


def plain(value):
    """SDK models (and containers of them) as plain ARM JSON."""
    if hasattr(value, "as_dict"):
        return value.as_dict()
    if isinstance(value, dict):
        return dict((key, plain(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


def props(resource):
    """The 'properties' block of an ARM JSON resource (empty when absent)."""
    return (resource or {}).get("properties") or {}


def parse_id(resource_id):
    """An ARM id as a dict: subscription, resource_group, and type -> name pairs (lower-case types)."""
    parts = [part for part in (resource_id or "").split("/") if part]
    out = {}
    for key, value in zip(parts[0::2], parts[1::2]):
        lowered = key.lower()
        if lowered == "subscriptions":
            out["subscription"] = value
        elif lowered == "resourcegroups":
            out["resource_group"] = value
        elif lowered != "providers":
            out[lowered] = value
    return out


def _translate(err, field):
    """An SDK exception as AnycastError, keeping Azure's code and message."""
    if isinstance(err, AnycastError):
        return err
    if isinstance(err, ClientAuthenticationError) and err.response is None:
        # No HTTP answer from ARM: the credential could not get a token.
        return AnycastError("auth_source", "could not get a token: %s" % err.message)
    if isinstance(err, HttpResponseError):
        code = getattr(err.error, "code", None) if err.error is not None else None
        message = getattr(err.error, "message", None) if err.error is not None else None
        status = err.status_code
        if status is None and err.response is not None:
            status = err.response.status_code
        return AnycastError(_FIELD_OF_CODE.get(code, field), message or err.reason or str(err), code=code or "HTTP%s" % status, status=status)
    if isinstance(err, ServiceResponseTimeoutError):
        return AnycastError("timeout", "gave up waiting for Azure: %s" % err.message)
    if isinstance(err, ServiceRequestError):
        return AnycastError("arm_endpoint", "could not reach Azure: %s" % err.message)
    if isinstance(err, ServiceResponseError):
        return AnycastError("timeout", "no complete answer from Azure in the time left: %s" % err.message)
    return AnycastError(field, "Azure request failed: %s" % (getattr(err, "message", None) or err))


def _deadline_retry_policy(deadline, **kwargs):
    """The SDK's retry policy (408/429/5xx with backoff, Retry-After honoured), cut off at the deadline.

    Defined in a function so that importing this file does not need azure-core.
    """

    class DeadlineRetryPolicy(RetryPolicy):
        def configure_retries(self, options):
            settings = super().configure_retries(options)
            # Each request gets what is left of the module's time, not a fresh week,
            # and waits no longer than that for an answer either.
            left = max(deadline - time.monotonic(), 0.001)
            settings["timeout"] = left
            options["read_timeout"] = min(options.get("read_timeout") or READ_TIMEOUT, left)
            return settings

        def increment(self, settings, response=None, error=None):
            if not super().increment(settings, response=response, error=error):
                return False
            # Give up (and report Azure's last answer) rather than sleep past the deadline.
            pause = None
            if error is None and response is not None:
                pause = self.get_retry_after(response)
            if pause is None:
                pause = self.get_backoff_time(settings)
            left = deadline - time.monotonic() - pause
            if left <= 0:
                return False
            # The next attempt waits for its answer only as long as the module has time left.
            response.context.options["read_timeout"] = min(READ_TIMEOUT, left)
            return True

    return DeadlineRetryPolicy(**kwargs)


class ArmSession:
    """Credential, client, deadline and the read / write primitives of one module run."""

    def __init__(self, params, check_mode=False):
        if not HAS_AZURE:
            raise AnycastError("azure-mgmt-network", missing_required_lib("azure-mgmt-network and azure-identity")
                               + ": " + AZURE_IMPORT_ERROR.strip().splitlines()[-1])
        if not params.get("subscription_id"):
            raise AnycastError("subscription_id", "required: set the subscription_id option or AZURE_SUBSCRIPTION_ID")
        if params["timeout"] <= 0:
            raise AnycastError("timeout", "must be a positive number of seconds, got %s" % params["timeout"])
        self.params = params
        self.check_mode = check_mode
        self.subscription_id = params["subscription_id"]
        self.deadline = time.monotonic() + params["timeout"]
        self._network = None

    @classmethod
    def from_module(cls, module):
        return cls(module.params, check_mode=module.check_mode)

    # ----------------------------------------------------------------- client

    def _credential(self):
        p = self.params
        kwargs = {}
        if p.get("ca_bundle"):
            kwargs["connection_verify"] = p["ca_bundle"]
        authority = (p.get("authority_host") or "").rstrip("/")
        if authority:
            kwargs["authority"] = authority
            if authority != DEFAULT_AUTHORITY_HOST:
                # Sovereign clouds and the lab emulator have no instance-discovery endpoint.
                kwargs["disable_instance_discovery"] = True
        source = p["auth_source"]
        if source == "auto" and p.get("client_id") and p.get("secret") and p.get("tenant"):
            source = "credentials"
        if source == "credentials":
            for option in ("client_id", "secret", "tenant"):
                if not p.get(option):
                    raise AnycastError(option, "required when auth_source is credentials")
            return identity.ClientSecretCredential(p["tenant"], p["client_id"], p["secret"], **kwargs)
        if source == "env":
            return identity.EnvironmentCredential(**kwargs)
        if source == "cli":
            return identity.AzureCliCredential(tenant_id=p.get("tenant"))
        if source == "msi":
            return identity.ManagedIdentityCredential(client_id=p.get("client_id"))
        return identity.DefaultAzureCredential(exclude_interactive_browser_credential=True, **kwargs)

    @property
    def network(self):
        """The NetworkManagementClient, built on first use."""
        if self._network is None:
            endpoint = self.params["arm_endpoint"].rstrip("/")
            timeout = self.params["timeout"]
            kwargs = dict(
                base_url=endpoint,
                credential_scopes=[endpoint + "/.default"],
                retry_policy=_deadline_retry_policy(self.deadline, retry_total=10, retry_backoff_factor=0.8, retry_backoff_max=30),
                polling_interval=POLL_INTERVAL,
                connection_timeout=min(30, timeout),
                read_timeout=min(READ_TIMEOUT, timeout),
            )
            if self.params.get("ca_bundle"):
                kwargs["connection_verify"] = self.params["ca_bundle"]
            self._network = NetworkManagementClient(self._credential(), self.subscription_id, **kwargs)
        return self._network

    def resource_id(self, resource_group, *type_and_names):
        """The ARM id of a Microsoft.Network resource: resource_id('rg', 'routeTables', 'rt1')."""
        return "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Network/%s" % (
            self.subscription_id, resource_group, "/".join(type_and_names))

    def remaining(self):
        return self.deadline - time.monotonic()

    # ----------------------------------------------------------------- reads

    def read(self, field, operation, *args):
        """Call a read operation (get or list) and return plain JSON; 404 is an error naming field."""
        try:
            return plain(_materialise(operation(*args)))
        except (AzureError, AnycastError) as err:
            raise _translate(err, field) from None

    def find(self, field, operation, *args):
        """Like read(), but a missing resource gives None (a missing resource group stays an error)."""
        try:
            return plain(_materialise(operation(*args)))
        except HttpResponseError as err:
            translated = _translate(err, field)
            if translated.status == 404 and translated.field == field:
                return None
            raise translated from None
        except AzureError as err:
            raise _translate(err, field) from None

    def long_running_read(self, field, operation, *args):
        """A POST that only reads (learned/advertised routes): start it and wait for its result."""
        try:
            return self._wait(field, operation(*args))
        except (AzureError, AnycastError) as err:
            raise _translate(err, field) from None

    # ----------------------------------------------------------------- writes

    def write(self, field, operation, *args):
        """Run a write (begin_create_or_update / begin_delete) to completion and return the result.

        In check mode nothing is sent and None is returned. A write refused with one of
        RETRYABLE_CODES (busy hub, routing not provisioned yet) is retried with a bounded,
        jittered backoff until the module's timeout.
        """
        if self.check_mode:
            return None
        attempt = 0
        while True:
            try:
                return self._wait(field, operation(*args))
            except HttpResponseError as err:
                failure = _translate(err, field)
                if failure.code not in RETRYABLE_CODES:
                    raise failure from None
                attempt += 1
                pause = min(MAX_BACKOFF, 0.5 * 2 ** attempt) + random.uniform(0, 0.5)
                retry_after = err.response.headers.get("Retry-After") if err.response is not None else None
                if retry_after and retry_after.isdigit():
                    pause = max(pause, int(retry_after))
                if time.monotonic() + pause >= self.deadline:
                    raise AnycastError(failure.field, "%s (still refused after %d attempts within timeout=%ss)"
                                       % (failure.message, attempt, self.params["timeout"]), code=failure.code, status=failure.status) from None
                time.sleep(pause)
            except AzureError as err:
                raise _translate(err, field) from None

    def _wait(self, field, poller):
        """Wait for a long-running operation within the deadline and return its result as JSON."""
        poller.wait(max(self.remaining(), 0.1))
        if not poller.done():
            raise AnycastError("timeout", "the operation on %s did not finish within timeout=%ss" % (field, self.params["timeout"]))
        return plain(poller.result())

    def wait_until(self, field, what, probe, interval=POLL_INTERVAL):
        """Poll probe() (which returns (done, value)) until done, bounded by the timeout."""
        while True:
            done, value = probe()
            if done:
                return value
            if self.remaining() <= interval:
                raise AnycastError("timeout", "%s: %s not reached within timeout=%ss" % (field, what, self.params["timeout"]))
            time.sleep(interval)


def _materialise(value):
    # list operations return lazy pagers: fetch every page inside the error handling.
    if hasattr(value, "by_page"):
        return list(value)
    return value


def model(name, body):
    """An SDK model built from ARM JSON: the SDK then drops read-only fields when it sends it."""
    return getattr(network_models, name)(body)
