"""The announcer's withdraw deadline, in process: the clock and BIRD's process table are stand-ins."""

import asyncio
import types

from anycast_healthcheck import announcer
from anycast_healthcheck.announcer import EXIT_LAST_RESORT, Announcer
from anycast_healthcheck.metrics import Metrics

PREFIX = '10.250.0.10/32'


def test_the_withdraw_deadline_runs_only_while_bird_runs(tmp_path, monkeypatch):
    clock, running, exits = [100.0], [False], []
    monkeypatch.setattr(announcer, 'time', types.SimpleNamespace(monotonic=lambda: clock[0]))
    monkeypatch.setattr(announcer, 'bird_running', lambda: running[0])
    config = {'withdraw_deadline': 1.0, 'reconcile_interval': 1.0, 'bird_socket': str(tmp_path / 'bird.ctl'),
              'state_file': str(tmp_path / 'announce.conf'), 'failsafe_file': str(tmp_path / 'failsafe.json')}
    checker = Announcer(config, Metrics(), exits.append, lambda: None)
    # Started while BIRD was stopped (after the `stop_bird` last resort): what BIRD announces is unknown.
    checker.wanted = {PREFIX: 0}

    def reconcile_at(when):
        clock[0] = when
        asyncio.run(checker.reconcile())  # BIRD's control socket is absent: no view

    for when in (100.0, 100.5, 101.0, 104.0):
        reconcile_at(when)
    assert not exits, 'BIRD stopped announces nothing: no deadline runs'
    running[0] = True  # BIRD starts: its process exists a moment before its control socket answers
    reconcile_at(104.5)
    reconcile_at(105.4)
    assert not exits, 'BIRD was stopped until 104.5: its socket had not been silent for a whole deadline'
    reconcile_at(105.5)
    assert exits == [EXIT_LAST_RESORT], 'silent a whole deadline while BIRD runs: the daemon exits for the failsafe'
