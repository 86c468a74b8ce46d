# Copyright: anycast.nva contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Probe scheduling: shared round timers on a grid, one runner per health group, its rounds."""

import asyncio

from .engine import KeptConnection, fast_capable, keeps_connection
from .probes import run_check_task


class Ticker:
    """Shared round timers: runners due at the same instant wake on one loop timer.

    Runners on their regular interval are kept on a grid (multiples of the interval on
    the loop clock), so groups with the same interval probe together and their probes
    share epoll_wait calls and timeout timers instead of waking the loop one by one.
    """

    def __init__(self, loop=None):
        self.due = {}  # when -> {runner: None}
        self.loop = loop

    def add(self, runner, when):
        """Wake `runner.launch(when)` at loop time `when`."""
        bucket = self.due.get(when)
        if bucket is None:
            bucket = self.due[when] = {}
            # get_running_loop() costs a getpid() syscall: look the loop up once.
            self.loop = self.loop or asyncio.get_running_loop()
            self.loop.call_at(when, self._fire, when)
        bucket[runner] = None

    def remove(self, runner, when):
        """Forget a pending wake-up (its timer, if left empty, fires and does nothing)."""
        bucket = self.due.get(when)
        if bucket is not None:
            bucket.pop(runner, None)

    def _fire(self, when):
        for runner in list(self.due.pop(when, ())):
            runner.launch(when)


def next_round(last, delay, interval):
    """Loop time of the next round: `last + delay`; on the regular interval, the nearest grid point."""
    when = last + delay
    if delay == interval:
        when = round(when / interval) * interval
        if when <= last:
            when += interval
    return when


class Runner:
    """Probes one health group (prefixes with identical checks and timing) on shared timers, no thread.

    `ticker` (Ticker) wakes it, `engine` (ProbeEngine) runs its plain TCP/HTTP probes, and
    `on_round(prefixes, results, flip)` receives every finished round: the group's prefixes,
    the results of its checks, and 'rise', 'fall' or None (whether health flipped).
    """

    def __init__(self, spec, health, ticker, engine, on_round):
        self.ticker = ticker
        self.engine = engine
        self.on_round = on_round
        self.spec = spec
        self.health = health
        self.prefixes = []
        self.last_start = None
        self.when = None
        self.rounds = set()
        self.last_results = []
        self.stopped = False
        self.fast = [fast_capable(c) for c in spec['checks']]
        self.kept = [KeptConnection(self.idle_closed) if keeps_connection(c) else None for c in spec['checks']]
        self.early_ok = self.early_next = False
        self.last_fresh = None  # loop time of the last round on fresh connections (fresh_due)

    def start(self):
        """Probe now, then on schedule."""
        self.stopped = False
        self.ticker.loop = self.ticker.loop or asyncio.get_running_loop()
        self._schedule(self.ticker.loop.time())

    def stop(self):
        """Cancel the next round and any round in flight."""
        self.stopped = True
        if self.when is not None:
            self.ticker.remove(self, self.when)
            self.when = None
        for rnd in list(self.rounds):
            rnd.cancel()
        for kept in self.kept:
            if kept is not None:
                kept.close()

    def _schedule(self, when=None):
        if self.when is not None:
            self.ticker.remove(self, self.when)
        if when is None:
            delay, interval = self.health.next_delay(), self.spec['interval']
            when = next_round(self.last_start, delay, interval)
            now = self.ticker.loop.time()
            if when < now:  # the loop was stalled: go on from now, no burst of catch-up rounds
                when = next_round(now, delay, interval)
        self.when = when
        self.ticker.add(self, when)

    def launch(self, now):
        """Start a round. Rounds may overlap (a hung target times out while the fast
        confirmations go on), so a hung target is withdrawn about as fast as a refusing one."""
        self.when = None
        if self.stopped:
            return
        # A round on schedule allows one early round again (see idle_closed).
        self.early_ok, self.early_next = not self.early_next, False
        self.last_start = now
        rnd = Round(self, self.fresh_due(now))
        self.rounds.add(rnd)
        self._schedule()
        rnd.start()

    def fresh_due(self, now):
        """True when this round probes the keep-alive checks on fresh connections, not their kept ones.

        So that a failure of new connections only (SYNs dropped, the accept queue full) is seen:
        when the next round would come later than `fresh_interval` after the last fresh one, and
        while a failure is being confirmed (a kept connection that still works must not hide it).
        """
        every = self.spec['fresh_interval']
        if not every or not any(self.kept):
            return False
        due = (self.last_fresh is None or self.health.fail_run > 0
               or now + self.health.next_delay() - self.last_fresh > every + 1e-6)
        if due:
            self.last_fresh = now
        return due

    def idle_closed(self):
        """The server closed or reset a kept connection between rounds: probe now, not at the next tick.

        The application may have stopped; `fall` failed probes are still needed to withdraw.
        A server that merely closes idle connections sooner than the interval costs one early
        probe per round at most (which reconnects and passes), never a storm.
        """
        if self.stopped or self.rounds or not self.early_ok:
            return
        self.early_ok, self.early_next = False, True
        self._schedule(self.ticker.loop.time())

    def finish(self, rnd, results):
        """A round's checks have all answered: feed the state machine."""
        self.rounds.discard(rnd)
        if self.stopped:
            return
        self.last_results = results
        delay_before = self.health.next_delay()
        flip = self.health.record(all(r['ok'] for r in results))
        self.on_round(self.prefixes, results, flip)
        if self.health.next_delay() != delay_before:
            self._schedule()  # switch to (or back from) the fast interval at once


class Round:
    """One probe round of a runner: every check of the group, in parallel; done when all answered."""

    __slots__ = ('runner', 'results', 'pending', 'probes', 'tasks', 'fresh')

    def __init__(self, runner, fresh=False):
        self.runner = runner
        self.fresh = fresh  # on fresh connections: the kept ones stay idle
        self.results = [None] * len(runner.spec['checks'])
        self.pending = len(self.results)
        self.probes, self.tasks = [], []

    def start(self):
        """Start every check (a probe may answer at once, e.g. no route to the host)."""
        runner = self.runner
        checks, timeout = runner.spec['checks'], runner.spec['timeout']
        for i, check in enumerate(checks):
            done = self._done_at(i)
            if runner.fast[i]:
                self.probes.append(runner.engine.start(check, timeout, done, None if self.fresh else runner.kept[i]))
            else:
                task = asyncio.ensure_future(run_check_task(check, timeout))
                task.add_done_callback(lambda t, done=done: t.cancelled() or done(t.result()))
                self.tasks.append(task)

    def _done_at(self, index):
        def done(result):
            self.results[index] = result
            self.pending -= 1
            if self.pending == 0:
                self.runner.finish(self, self.results)
        return done

    def cancel(self):
        """Stop the round's probes; it reports nothing."""
        self.pending = -1
        for probe in self.probes:
            probe.cancel()
        for task in self.tasks:
            task.cancel()
