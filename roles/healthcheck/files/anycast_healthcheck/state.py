# Copyright: anycast.nva contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The state machine of a prefix: pure logic, no I/O, time passed in."""

import json


def state_name(value):
    """Human name of an announce value."""
    if value == 0:
        return 'withdrawn'
    return 'announced' if value == 1 else 'prepended'


HEALTH_KEYS = ('checks', 'interval', 'fast_interval', 'timeout', 'rise', 'fall')


def health_key(spec):
    """Prefixes whose checks and timing are identical share one probe schedule and one verdict."""
    return json.dumps([spec[k] for k in HEALTH_KEYS], sort_keys=True)


class Health:
    """Rise/fall hysteresis over probe results.

    Starts down (fail closed); up after `rise` consecutive passing probes, down again
    after `fall` consecutive failing ones.
    """

    def __init__(self, spec, previous=None):
        self.spec = spec
        self.healthy = previous.healthy if previous else False
        self.was_healthy = previous.was_healthy if previous else False
        self.ok_run = 0
        self.fail_run = 0

    def record(self, ok):
        """Feed one probe result; return 'rise' or 'fall' when health flips, else None."""
        if ok:
            self.ok_run += 1
            self.fail_run = 0
            if not self.healthy and self.ok_run >= self.spec['rise']:
                self.healthy = self.was_healthy = True
                return 'rise'
        else:
            self.fail_run += 1
            self.ok_run = 0
            if self.healthy and self.fail_run >= self.spec['fall']:
                self.healthy = False
                return 'fall'
        return None

    def next_delay(self):
        """Seconds to the next probe: fast while a failure of a healthy target is being confirmed."""
        if self.healthy and self.fail_run > 0:
            return self.spec['fast_interval']
        return self.spec['interval']


class Prefix:
    """Announcement decision of one prefix: health, `on_failure` and the drain switch."""

    def __init__(self, spec, health):
        self.spec = spec
        self.health = health
        self.drained_at = None
        self.drain_after = None  # this drain's own withdraw delay; None: the prefix's drain_withdraw_after

    def drain(self, now, withdraw_after=None):
        """Start draining (a second drain keeps the first start time; a given delay replaces the last one)."""
        if self.drained_at is None:
            self.drained_at = now
        if withdraw_after is not None:
            self.drain_after = withdraw_after

    def undrain(self):
        """Stop draining."""
        self.drained_at = None
        self.drain_after = None

    def drain_deadline(self):
        """Wall-clock time at which a drained prefix is withdrawn, or None."""
        if self.drained_at is None:
            return None
        return self.drained_at + (self.spec['drain_withdraw_after'] if self.drain_after is None else self.drain_after)

    def value(self, now):
        """Announce value for BIRD: 0 withdrawn, 1 announced, 1+n prepended n times."""
        prepended = 1 + self.spec['prepend']
        if self.drained_at is not None:
            # Drain: de-prefer first so traffic moves gently, withdraw after the delay.
            if now >= self.drain_deadline() or not self.health.healthy:
                return 0
            return prepended
        if self.health.healthy:
            return 1
        # on_failure=prepend keeps a de-preferred route, but only once the target has been
        # healthy: at start nothing is announced (fail closed).
        if self.spec['on_failure'] == 'prepend' and self.health.was_healthy:
            return prepended
        return 0
