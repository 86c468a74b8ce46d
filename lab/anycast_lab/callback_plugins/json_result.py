# -*- coding: utf-8 -*-
# Copyright: (c) 2026, anycast.nva maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test helper: a stdout callback that prints every task result as one JSON document.

ansible-core ships no JSON stdout callback (ansible.posix.json is not installed here), and
the tests need the exact result a playbook author would register.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: json_result
type: stdout
short_description: Print all task results as one JSON document (tests only)
description:
  - Collects the result of every task and prints one JSON object at the end of the run, with a C(tasks) list
    of task, host, status and result.
"""

import json

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "json_result"

    def __init__(self, *args, **kwargs):
        super(CallbackModule, self).__init__(*args, **kwargs)
        self.tasks = []

    def _record(self, result, status):
        self.tasks.append(dict(task=result.task_name, host=result._host.get_name(), status=status,
                               result=self._convert_result(result._result)))

    @staticmethod
    def _convert_result(value):
        # Keep everything a playbook could register (diff included), minus Ansible's internal keys;
        # the round trip turns Ansible's tagged str/dict types into plain JSON.
        public = dict((key, item) for key, item in value.items() if not key.startswith("_ansible"))
        return json.loads(json.dumps(public, default=str))

    def v2_runner_on_ok(self, result):
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._record(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._record(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        self._display.display(json.dumps(dict(tasks=self.tasks), sort_keys=True))
