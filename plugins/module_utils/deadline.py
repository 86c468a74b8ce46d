# -*- coding: utf-8 -*-
# Copyright: (c) 2026, anycast.nva maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The module's deadline in the Azure SDK: a retry policy that retries 408, 429 and 5xx until the deadline (not a
count), and a credential whose token request ends at the same deadline. Used by arm.ArmSession."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading

from ansible_collections.anycast.nva.plugins.module_utils.errors import AnycastError

# Longest wait for one answer (less when the module's timeout runs out sooner).
READ_TIMEOUT = 120
# azure-core stops after 3 throttled or failed answers by default; the module's timeout bounds retries instead.
RETRIES_UNTIL_DEADLINE = 100000
# Longest pause between two attempts when Azure gives no Retry-After.
MAX_RETRY_BACKOFF = 30


def retried_until_deadline(status):
    """The answers the retry policy retries until the deadline (azure-core's list: 408, 429, 5xx but 501 and 505)."""
    return status is not None and (status in (408, 429) or (status >= 500 and status not in (501, 505)))


def deadline_retry_policy(remaining):
    """The SDK's retry policy (408, 429 and 5xx, with Retry-After or x-ms-retry-after-ms honoured, else an
    exponential backoff) ended by the module's deadline, never by a count: remaining() is the time left.

    Defined in a function so that importing this file does not need azure-core (arm.ArmSession reports it missing).
    """
    from azure.core.pipeline.policies import RetryPolicy  # pylint: disable=import-outside-toplevel

    class DeadlineRetryPolicy(RetryPolicy):
        def configure_retries(self, options):
            settings = super().configure_retries(options)
            # Each request gets what is left of the module's time, not a fresh week,
            # and waits no longer than that for an answer either.
            left = max(remaining(), 0.001)
            settings["timeout"] = left
            options["read_timeout"] = min(options.get("read_timeout") or READ_TIMEOUT, left)
            return settings

        def increment(self, settings, response=None, error=None):
            # The counts never run out (RETRIES_UNTIL_DEADLINE): the deadline below ends the retries.
            if not super().increment(settings, response=response, error=error):
                return False
            pause = None
            if error is None and response is not None:
                pause = self.get_retry_after(response)
            if pause is None:
                pause = self.get_backoff_time(settings)
            left = remaining() - pause
            if left <= 0:
                # Give up (and report Azure's last answer) rather than sleep past the deadline.
                return False
            # The next attempt waits for its answer only as long as the module has time left.
            response.context.options["read_timeout"] = min(READ_TIMEOUT, left)
            return True

    unbounded = dict((key, RETRIES_UNTIL_DEADLINE) for key in ("retry_total", "retry_connect", "retry_read", "retry_status"))
    return DeadlineRetryPolicy(retry_backoff_factor=0.8, retry_backoff_max=MAX_RETRY_BACKOFF, **unbounded)


class BoundedCredential:
    """A credential whose token requests end at the module's deadline: azure-identity's own timeouts and retries
    (and a CLI or managed identity endpoint that hangs) could hold the task far longer. The request runs in a
    daemon thread, left behind when the time is up (the module then fails and its process ends)."""

    def __init__(self, credential, remaining, timeout_message):
        self.credential = credential
        self.remaining = remaining                # seconds left of the module's time
        self.timeout_message = timeout_message    # the error's text when no token came in time

    def get_token(self, *scopes, **kwargs):
        outcome = {}

        def fetch():
            try:
                outcome["token"] = self.credential.get_token(*scopes, **kwargs)
            except Exception as err:  # pylint: disable=broad-except
                outcome["error"] = err  # raised again in the module's thread below

        worker = threading.Thread(target=fetch, name="token", daemon=True)
        worker.start()
        worker.join(max(self.remaining(), 0.001))
        if "error" in outcome:
            raise outcome["error"]
        if "token" not in outcome:
            raise AnycastError("timeout", self.timeout_message())
        return outcome["token"]
