# -*- coding: utf-8 -*-
# Copyright: (c) 2026, anycast.nva maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one error type the modules catch in main(): it names the option at fault."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class AnycastError(Exception):
    """A failure a user can act on.

    field   the module option (or option path such as routes[2].next_hop_ip_address) at fault
    message what went wrong, in words
    code    Azure's error code when Azure refused the request (None for local validation)
    status  the HTTP status of Azure's answer, when there was one
    """

    def __init__(self, field, message, code=None, status=None):
        super().__init__(message)
        self.field = field
        self.message = message
        self.code = code
        self.status = status

    def __str__(self):
        if self.code:
            return "%s: %s: %s" % (self.field, self.code, self.message)
        return "%s: %s" % (self.field, self.message)

    def fail_kwargs(self):
        """Arguments for AnsibleModule.fail_json()."""
        return dict(msg=str(self), error=dict(field=self.field, code=self.code, message=self.message, status=self.status))
