# Copyright: anycast.nva contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The state machine of a prefix: pure logic, no I/O, time passed in."""

import json


def state_name(value):
    """Human name of an announce value."""
    if value == 0:
        return 'withdrawn'
    return 'announced' if value == 1 else 'prepended'


HEALTH_KEYS = ('checks', 'interval', 'fast_interval', 'timeout', 'rise', 'fall', 'fresh_interval')


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

    def restart(self):
        """Down, counting from zero (an NVA self-check changed): `rise` passing probes to come back."""
        self.healthy = False
        self.ok_run = self.fail_run = 0

    def next_delay(self):
        """Seconds to the next probe: fast while a failure of a healthy target is being confirmed."""
        if self.healthy and self.fail_run > 0:
            return self.spec['fast_interval']
        return self.spec['interval']


class Backends:
    """Health of a prefix with `backends`: up while at least `min_healthy` backends are up (each with its
    own rise/fall, a Health) and the prefix's own checks, if it has any, pass.

    Its verdict changes only through update(), which the daemon calls after any of them flips.
    """

    def __init__(self, spec, backends, own=None, previous=None):
        self.spec = spec
        self.backends = backends  # {address: Health}
        self.own = own            # Health of the prefix's own checks, or None
        self.healthy = previous.healthy if previous else False
        self.was_healthy = previous.was_healthy if previous else False
        self.update()

    def up(self):
        """The addresses of the backends that are up."""
        return [b for b, h in self.backends.items() if h.healthy]

    def update(self):
        """Recompute the verdict; return 'rise' or 'fall' when it flips, else None."""
        healthy = len(self.up()) >= self.spec['min_healthy'] and (self.own is None or self.own.healthy)
        if healthy == self.healthy:
            return None
        self.healthy = healthy
        self.was_healthy = self.was_healthy or healthy
        return 'rise' if healthy else 'fall'


class Damping:
    """Flap damping of one prefix: a hold-down before it is announced again after repeated flaps.

    A flap is a withdraw->announce cycle: the health rising again after a fall. With more than
    `flap_threshold` flaps in the last `flap_window` seconds, the announcement waits: `flap_hold`
    seconds for the first flap over the threshold, doubled for each further one, at most
    `flap_hold_max`. A flap during a hold-down starts a longer one; a hold-down is never shortened.
    Flaps older than the window are forgotten, so a prefix stable for a window is announced after
    `rise` again. Only announcing waits: a withdraw is never delayed. `flap_threshold` 0: off
    (flaps are still counted).
    """

    def __init__(self, spec, previous=None):
        self.spec = spec
        self.flaps = list(previous.flaps) if previous else []  # times of the flaps in the window
        self.fell = previous.fell if previous else False      # the health fell since the last rise
        self.held_until = previous.held_until if previous else None

    def flipped(self, flip, now):
        """Feed a 'rise' or 'fall' of the health; return the hold-down (seconds, 0.0 for none) a flap
        starts, or None when this was no flap (a fall, or the first rise)."""
        if flip != 'rise':
            self.fell = self.fell or flip == 'fall'
            return None
        if not self.fell:
            return None
        self.fell = False
        self.flaps = self.recent(now) + [now]
        over = len(self.flaps) - self.spec['flap_threshold']
        if not self.spec['flap_threshold'] or over <= 0:
            return 0.0
        hold = min(self.spec['flap_hold'] * 2 ** min(over - 1, 40), self.spec['flap_hold_max'])
        self.held_until = max(self.held_until or 0.0, now + hold)
        return hold

    def recent(self, now):
        """The times of the flaps in the window that ends now."""
        return [t for t in self.flaps if t > now - self.spec['flap_window']]

    def held(self, now):
        """True while a hold-down runs."""
        return self.held_until is not None and now < self.held_until


class Prefix:
    """Announcement decision of one prefix: health, flap damping, `on_failure` and the drain switch.

    `previous`: the same prefix before a reload, whose drain switch and flap damping it keeps.
    `nva`: the NVA's self-checks (selfcheck.SelfChecks); while they fail the prefix is withdrawn.
    """

    def __init__(self, spec, health, previous=None, nva=None):
        self.spec = spec
        self.health = health
        self.nva = nva
        self.drained_at = previous.drained_at if previous else None
        # this drain's own withdraw delay; None: the prefix's drain_withdraw_after
        self.drain_after = previous.drain_after if previous else None
        self.damping = Damping(spec, previous.damping if previous else None)

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

    def next_change(self, now, announced):
        """(time, reason) at which the value changes without a probe (a hold-down or a drain ends), or None.

        `announced`: the value in force (a drain's withdraw is due only while something is announced).
        """
        if self.damping.held(now):
            return self.damping.held_until, 'hold-down-end'
        deadline = self.drain_deadline()
        if deadline is not None and announced:
            return deadline, 'drain-timeout'
        return None

    def value(self, now):
        """Announce value for BIRD: 0 withdrawn, 1 announced, 1+n prepended n times."""
        if self.nva is not None and not self.nva.ok:
            return 0  # the NVA itself fails a self-check: fail closed, whatever on_failure says
        prepended = 1 + self.spec['prepend']
        # A hold-down keeps a healthy prefix as if it were still failing; it never delays a withdraw.
        up = self.health.healthy and not self.damping.held(now)
        if self.drained_at is not None:
            # Drain: de-prefer first so traffic moves gently, withdraw after the delay.
            if now >= self.drain_deadline() or not up:
                return 0
            return prepended
        if up:
            return 1
        # on_failure=prepend keeps a de-preferred route, but only once the target has been
        # healthy: at start nothing is announced (fail closed).
        if self.spec['on_failure'] == 'prepend' and self.health.was_healthy:
            return prepended
        return 0
