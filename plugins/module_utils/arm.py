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

import contextlib
import copy
import random
import time
import traceback

from ansible.module_utils.basic import env_fallback, missing_required_lib

from ansible_collections.anycast.nva.plugins.module_utils.deadline import READ_TIMEOUT, BoundedCredential, deadline_retry_policy, retried_until_deadline
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
        return BoundedCredential(self._base_credential(kwargs), self.remaining, self._token_timeout_message)

    def _token_timeout_message(self):
        p = self.params
        return ("no token from the identity endpoint (auth_source %s, authority %s) within timeout=%ss, so the request that needed it "
                "was not sent" % (p["auth_source"], p.get("authority_host") or DEFAULT_AUTHORITY_HOST, p["timeout"]))

    def _base_credential(self, kwargs):
        p = self.params
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
                retry_policy=deadline_retry_policy(self.remaining),
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

    @contextlib.contextmanager
    def time_box(self, seconds):
        """Within the block, every wait and retry ends after at most seconds (and never after the module's deadline)."""
        saved = self.deadline
        self.deadline = min(saved, time.monotonic() + seconds)
        try:
            yield
        finally:
            self.deadline = saved

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
            return self._wait(field, "the request for " + _target(operation, args), operation(*args))
        except (AzureError, AnycastError) as err:
            raise _translate(err, field) from None

    # ----------------------------------------------------------------- writes

    def write(self, field, operation, *args, **kwargs):
        """Run a write (begin_create_or_update / begin_delete) to completion and return the result.

        In check mode nothing is sent and None is returned. 408, 429 and 5xx answers are retried by the
        client's retry policy until the module's deadline; a write refused with one of RETRYABLE_CODES (busy
        hub, routing not provisioned yet) is retried here with a bounded, jittered backoff until the deadline.
        A write that runs out of time fails naming the resource and saying whether Azure accepted it.
        kwargs go to the SDK operation (headers=).
        """
        if self.check_mode:
            return None
        target = _target(operation, args)
        started = time.monotonic()
        attempt = 0
        while True:
            try:
                poller = operation(*args, **kwargs)
            except HttpResponseError as err:
                failure = _translate(err, field)
                if failure.code not in RETRYABLE_CODES:
                    raise self._not_accepted(failure, target, time.monotonic() - started) from None
                attempt += 1
                pause = min(MAX_BACKOFF, 0.5 * 2 ** attempt) + random.uniform(0, 0.5)
                retry_after = err.response.headers.get("Retry-After") if err.response is not None else None
                if retry_after and retry_after.isdigit():
                    pause = max(pause, int(retry_after))
                if time.monotonic() + pause >= self.deadline:
                    raise AnycastError(failure.field, "%s (still refused after %d attempts within timeout=%ss; Azure did not accept the write to %s)"
                                       % (failure.message, attempt, self.params["timeout"], target), code=failure.code, status=failure.status) from None
                time.sleep(pause)
                continue
            except ServiceResponseError as err:
                raise AnycastError("timeout", "no complete answer to the write to %s within timeout=%ss: Azure may have accepted it, and then it "
                                   "may still complete (rerun the task to see): %s" % (target, self.params["timeout"], err.message)) from None
            except AzureError as err:
                raise _translate(err, field) from None
            return self._wait(field, "the write to " + target, poller)

    def _not_accepted(self, failure, target, seconds):
        """A refused write as AnycastError; a throttled or failing Azure was retried until the deadline, so that is a timeout."""
        if not retried_until_deadline(failure.status):
            return failure
        return AnycastError("timeout", "Azure did not accept the write to %s: retried for %.0f s, until the deadline (timeout=%ss); "
                            "its last answer: %s %s: %s" % (target, seconds, self.params["timeout"], failure.status, failure.code, failure.message),
                            code=failure.code, status=failure.status)

    def update(self, field, resource, change, reread, operation, *args):
        """Read-modify-write with optimistic concurrency; returns the written resource (None when nothing was sent).

        resource is the JSON read before (None: it does not exist yet); change(resource) gives the SDK model to
        PUT, with only this module's change applied (None: nothing left to change); reread() reads it again. The
        PUT carries If-Match with the etag read (If-None-Match: * for a new resource), so Azure refuses it with 412
        when another client wrote the resource in between; then it is read again and the change applied to what
        is there now, until the module's timeout. Nobody else's change is overwritten.
        """
        if self.check_mode:
            return None
        while True:
            body = change(resource)
            if body is None:
                return None
            etag = (resource or {}).get("etag")
            headers = {"If-Match": etag} if etag else {"If-None-Match": "*"}
            try:
                return self.write(field, operation, *(args + (body,)), headers=headers)
            except AnycastError as err:
                if err.status != 412:
                    raise
                if self.remaining() <= 0:
                    raise AnycastError(field, "another client kept changing the resource between this module's read and write until "
                                       "timeout=%ss; nothing was written" % self.params["timeout"], code=err.code, status=412) from None
            resource = reread()

    def _wait(self, field, what, poller):
        """Wait for a long-running operation Azure accepted, within the deadline, and return its result as JSON."""
        try:
            poller.wait(max(self.remaining(), 0.1))
            if poller.done():
                return plain(poller.result())
        except AzureError as err:
            failure = _translate(err, field)
            if failure.field != "timeout" and not retried_until_deadline(failure.status):
                raise failure from None
        raise AnycastError("timeout", "Azure accepted %s, but it did not finish within timeout=%ss; it may still complete "
                           "(rerun the task to see)" % (what, self.params["timeout"]))

    def wait_until(self, field, what, probe, interval=POLL_INTERVAL):
        """Poll probe() (which returns (done, value)) until done, bounded by the timeout."""
        while True:
            done, value = probe()
            if done:
                return value
            if self.remaining() <= interval:
                raise AnycastError("timeout", "%s: %s not reached within timeout=%ss" % (field, what, self.params["timeout"]))
            time.sleep(interval)


def _target(operation, args):
    """What an SDK operation acts on, for messages: 'RouteTables rg-weu/rt-spoke'."""
    kind = type(getattr(operation, "__self__", None)).__name__.replace("Operations", "")
    return "%s %s" % (kind, "/".join(arg for arg in args if isinstance(arg, str)))


def _materialise(value):
    # list operations return lazy pagers: fetch every page inside the error handling.
    if hasattr(value, "by_page"):
        return list(value)
    return value


def model(name, body):
    """An SDK model built from ARM JSON: the SDK then drops read-only fields when it sends it."""
    return getattr(network_models, name)(body)
