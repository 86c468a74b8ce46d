# -*- coding: utf-8 -*-
# Copyright: (c) 2026, anycast.nva maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The subscription's locations: a resource created in a location Azure does not have would be refused after the
first writes of a run (or, for a typo, never), so a create checks its location before anything is written."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.anycast.nva.plugins.module_utils.errors import AnycastError

# The version of ARM's subscription API (Microsoft.Resources) that lists locations.
LOCATIONS_API_VERSION = "2022-12-01"


def normalised(location):
    """'West Europe' and 'westeurope' name the same location."""
    return (location or "").replace(" ", "").lower()


def check_location(session, field, location):
    """Fail naming field unless location is one of the subscription's locations (read from Azure)."""
    from azure.core.exceptions import AzureError  # pylint: disable=import-outside-toplevel
    from azure.core.rest import HttpRequest  # pylint: disable=import-outside-toplevel

    url = "%s/subscriptions/%s/locations?api-version=%s" % (session.params["arm_endpoint"].rstrip("/"), session.subscription_id, LOCATIONS_API_VERSION)
    try:
        answer = session.network.send_request(HttpRequest("GET", url))
        answer.raise_for_status()
        names = set()
        for item in answer.json().get("value") or []:
            names.update((normalised(item.get("name")), normalised(item.get("displayName"))))
    except AzureError as err:
        raise AnycastError(field, "could not read the subscription's locations: %s" % (getattr(err, "message", None) or err)) from None
    if normalised(location) not in names:
        raise AnycastError(field, "%r is not a location of subscription %s" % (location, session.subscription_id), code="LocationNotAvailable")
