# -*- coding: utf-8 -*-
# Copyright: (c) 2026, anycast.nva maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compare-then-act: the modules describe a resource as a plain dict (before, after)
and act only when the two differ. Pure functions, no Azure."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


def differing_keys(before, after):
    """Sorted keys whose values differ between two flat dicts (a missing key counts as None)."""
    before = before or {}
    after = after or {}
    return sorted(key for key in set(before) | set(after) if before.get(key) != after.get(key))


def same_id(one, other):
    """ARM resource ids compare case-insensitively."""
    return (one or "").lower() == (other or "").lower()


def by_name(items):
    """Index a list of dicts with a 'name' key, case-insensitively (Azure names are)."""
    return dict((item["name"].lower(), item) for item in items)


def result(before, after, changed=None, **extra):
    """A module result with Ansible's diff block; changed defaults to before != after."""
    out = dict(changed=(before != after) if changed is None else changed, diff=dict(before=before or {}, after=after or {}))
    out.update(extra)
    return out
