# -*- coding: utf-8 -*-
# Copyright: (c) 2026, anycast.nva maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja filters for the roles' preflight messages: the modules' rules (module_utils/validation.py).

Documentation: the YAML file beside this one named after each filter.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.anycast.nva.plugins.module_utils import validation


def asn_error(value):
    """anycast.nva.asn_error: why value is not an ASN an NVA may use with Route Server; empty when it is one."""
    return validation.asn_error(value) or ""


class FilterModule(object):
    """The collection's Jinja filters."""

    def filters(self):
        return {"asn_error": asn_error}
