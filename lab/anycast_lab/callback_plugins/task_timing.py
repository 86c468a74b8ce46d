# -*- coding: utf-8 -*-
# Copyright: (c) 2026, anycast.nva maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark helper: where a playbook run spends its time, task by task, written as JSON.

ansible.posix's profile_tasks and profile_roles are not installed here. This callback writes, at the end
of the run, every task's play, role, name, wall seconds (its start to the next task's start: the linear
strategy runs one task at a time across the hosts) and per-host status, plus the run's recap, to the
file named by $ANYCAST_TASK_TIMING (bench/converge_bench.py reads it).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: task_timing
type: aggregate
short_description: Write each task's wall time and per-host status to a JSON file (benchmarks only)
description:
  - At the end of the run, writes to the file named by the environment variable C(ANYCAST_TASK_TIMING) a JSON
    object with C(tasks) (play, role, task, seconds, status per host) and C(stats) (the recap per host).
requirements:
  - enable in configuration (ANSIBLE_CALLBACKS_ENABLED=task_timing)
"""

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_timing"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super(CallbackModule, self).__init__(*args, **kwargs)
        self.tasks = []
        self.play = ""
        self.started = time.monotonic()

    def _close_last(self):
        if self.tasks and self.tasks[-1]["seconds"] is None:
            self.tasks[-1]["seconds"] = round(time.monotonic() - self.tasks[-1]["start"], 3)

    def v2_playbook_on_play_start(self, play):
        self._close_last()
        self.play = play.get_name()

    def _start(self, task):
        self._close_last()
        role = task._role.get_name(include_role_fqcn=False) if task._role else ""
        self.tasks.append(dict(play=self.play, role=role, task=task.get_name(), action=task.action,
                               start=time.monotonic(), seconds=None, hosts={}))

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._start(task)

    def v2_playbook_on_handler_task_start(self, task):
        self._start(task)

    def _record(self, result, status):
        if self.tasks:
            self.tasks[-1]["hosts"][result._host.get_name()] = status

    def v2_runner_on_ok(self, result):
        self._record(result, "changed" if result._result.get("changed") else "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "ignored" if ignore_errors else "failed")

    def v2_runner_on_skipped(self, result):
        self._record(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._record(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        self._close_last()
        path = os.environ.get("ANYCAST_TASK_TIMING")
        if not path:
            return
        recap = dict((host, stats.summarize(host)) for host in sorted(stats.processed))
        for task in self.tasks:
            task["start"] = round(task["start"] - self.started, 3)
        with open(path, "w") as handle:
            json.dump(dict(tasks=self.tasks, stats=recap, seconds=round(time.monotonic() - self.started, 3)), handle, indent=1)
