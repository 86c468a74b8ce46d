# Copyright: anycast.nva contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one writer of BIRD's announcement state.

It pushes the daemon's decisions (state file + `configure`), reads back what BIRD actually
does every `reconcile_interval` seconds (its anycast_state() values and the routes it exports
to each Route Server session) and repairs any difference, whoever made it. When a withdraw
does not get through within `withdraw_deadline` seconds it takes a last resort that stops the
announcement: BGP sessions disabled over the socket, or, when the socket is gone while BIRD
still runs, the daemon exits and the unit's root `failsafe` step stops BIRD.
"""

import asyncio
import json
import time

from .announce import (BirdError, BirdUnreachable, atomic_write, bird_configure, bird_running, bird_view,
                       disable_sessions, enable_sessions, read_text, render_state)
from .util import log

EXIT_LAST_RESORT = 75  # the unit's failsafe step stops BIRD when the daemon ends with it


def read_failsafe(path):
    """The last-resort record: {'counts': {action: n}, 'disabled': [sessions], 'at': time}."""
    try:
        record = json.loads(read_text(path) or '{}')
    except ValueError:
        record = {}
    record = record if isinstance(record, dict) else {}
    counts = record.get('counts') if isinstance(record.get('counts'), dict) else {}
    disabled = record.get('disabled') if isinstance(record.get('disabled'), list) else []
    return {'counts': counts, 'disabled': [str(name) for name in disabled], 'at': record.get('at')}


def write_failsafe(path, record):
    """Replace the last-resort record (root's failsafe step and the daemon both write it)."""
    atomic_write(path, json.dumps(record) + '\n', mode=0o644)


def record_failsafe(path, action, disabled=None):
    """Count a last resort taken (by the daemon or by the root failsafe step) and what it disabled."""
    record = read_failsafe(path)
    record['counts'][action] = int(record['counts'].get(action, 0)) + 1
    record['disabled'] = sorted(set(record['disabled']) | set(disabled or ()))
    record['at'] = time.time()
    write_failsafe(path, record)


class Announcer:
    """Pushes the wanted values to BIRD, reconciles with what BIRD does, takes the last resort."""

    def __init__(self, config, metrics, stop, on_applied):
        self.config = config
        self.metrics = metrics
        self.stop = stop          # callable(exit_code): end the daemon
        self.on_applied = on_applied  # called after every push (metrics textfile)
        self.wanted = {}          # prefix -> value the daemon decided
        self.view = None          # bird_view() as last read; None while BIRD does not answer
        self.pending = False
        self.failed = False
        self.lock = asyncio.Lock()
        self.overdue_since = None  # monotonic time since which BIRD announces something wanted withdrawn
        self.maybe_announcing = None  # prefixes BIRD may announce; None: unknown (assume all)
        self.last_repair = None   # what the last repair found, so a lasting difference is logged once

    # -- push --------------------------------------------------------------

    def push(self, values):
        """Make `values` BIRD's state now; pushes arriving meanwhile coalesce."""
        self.wanted = dict(values)
        self.pending = True
        if not self.lock.locked():
            asyncio.ensure_future(self._apply_loop())

    async def _apply_loop(self):
        async with self.lock:
            while self.pending:
                self.pending = False
                await self.apply(dict(self.wanted))

    async def apply(self, values):
        """Write the state file and reconfigure BIRD; log (not raise) failures."""
        start = time.monotonic()
        try:
            atomic_write(self.config['state_file'], render_state(values))
            reply = await bird_configure(self.config['bird_socket'])
            self.metrics.configure_total['ok'] += 1
            if self.failed:
                log('bird_configure_recovered', reply=reply)
            self.failed = False
        except (OSError, BirdError) as exc:
            self.metrics.configure_total['error'] += 1
            if not self.failed:
                log('bird_configure_failed', error=str(exc))
            self.failed = True
        self.metrics.configure_seconds = round(time.monotonic() - start, 6)
        self.on_applied()

    # -- reconcile ---------------------------------------------------------

    async def reconcile_loop(self):
        """Every reconcile_interval: read BIRD back, repair, check the withdraw bound."""
        while True:
            await asyncio.sleep(self.config['reconcile_interval'])
            await self.reconcile()

    async def read_view(self):
        """Read what BIRD does with every wanted prefix (None when it does not answer)."""
        try:
            self.view = await bird_view(self.config['bird_socket'], sorted(self.wanted))
        except BirdError:
            self.view = None
        self.metrics.bird_view = self.view
        return self.view

    async def reconcile(self):
        """Repair any difference between what is wanted and what BIRD does; enforce the withdraw bound."""
        if self.lock.locked() or self.pending:
            return  # a push is under way: judge its result next time
        view = await self.read_view()
        disabled = read_failsafe(self.config['failsafe_file'])['disabled']
        if view is None and self.failed:
            self.push(self.wanted)  # BIRD down or starting: keep offering our state until it takes it
        if view is not None:
            self.maybe_announcing = {p for p, value in view['values'].items() if value != 0}
            differs = {p: [view['values'].get(p), value] for p, value in self.wanted.items() if view['values'].get(p) != value}
            stale_file = read_text(self.config['state_file']) != render_state(self.wanted)
            if differs or stale_file:
                if (differs, stale_file) != self.last_repair:
                    self.metrics.reconcile_repairs += 1
                    log('reconcile_repair', bird_vs_wanted=differs, state_file_rewritten=stale_file)
                self.last_repair = (differs, stale_file)
                self.push(self.wanted)
            else:
                self.last_repair = None
                if disabled:
                    await self._end_last_resort()
        if disabled:
            self.overdue_since = None  # the last resort holds the sessions down: nothing is announced
        else:
            await self._enforce_withdraw_bound(view)

    async def _enforce_withdraw_bound(self, view):
        announcing = self.maybe_announcing if self.maybe_announcing is not None else set(self.wanted)
        overdue = sorted(p for p, value in self.wanted.items() if value == 0 and p in announcing)
        # BIRD not running announces nothing: the deadline runs only while it runs, so that a checker
        # which waited through a BIRD stop does not stop BIRD in the moment between its start and its socket.
        if not overdue or (view is None and not bird_running()):
            self.overdue_since = None
            return
        now = time.monotonic()
        self.overdue_since = self.overdue_since or now
        if now - self.overdue_since < self.config['withdraw_deadline']:
            return
        self.overdue_since = None
        if view is None:  # BIRD runs (checked above) but its socket is silent
            log('last_resort', action='stop_bird', prefixes=overdue,
                reason="BIRD's control socket does not answer while BIRD runs: the daemon exits, the unit's failsafe stops BIRD")
            self.stop(EXIT_LAST_RESORT)
            return
        try:
            names = await disable_sessions(self.config['bird_socket'])
        except BirdError as exc:
            log('last_resort_failed', action='disable_sessions', error=str(exc))
            return
        record_failsafe(self.config['failsafe_file'], 'disable_sessions', names)
        log('last_resort', action='disable_sessions', sessions=names, prefixes=overdue,
            reason='BIRD did not apply the withdraw within %s s' % self.config['withdraw_deadline'])

    async def _end_last_resort(self):
        """BIRD does what is wanted again: bring back the sessions the last resort took down."""
        path = self.config['failsafe_file']
        record = read_failsafe(path)
        names, record['disabled'] = record['disabled'], []
        try:
            await enable_sessions(self.config['bird_socket'], names)
        except BirdUnreachable:
            return
        write_failsafe(path, record)
        log('last_resort_ended', sessions=names)
