"""Flap damping (state.Damping): pure logic on a fake clock, its configuration, and a real daemon that holds a flapping prefix down."""

import json
import time

import pytest

from anycast_healthcheck.config import ConfigError, PREFIX_DEFAULTS, validate_prefix
from anycast_healthcheck.metrics import Metrics
from anycast_healthcheck.state import Health, Prefix
from test_daemon import PREFIX, Backend, announced, changes, cli, metrics_text, start_daemon, stop_daemon, wait_value


def make_prefix(spec, previous=None):
    return Prefix(spec, Health(spec), previous)


class Clock:
    """A fake clock: the prefix's health is fed probe results at the times the test says."""

    def __init__(self, prefix):
        self.prefix = prefix
        self.now = 0.0

    def probe(self, ok, at=None):
        """One probe result at `at` (default: now); returns the hold-down a flap starts (None: no flap)."""
        self.now = self.now if at is None else at
        flip = self.prefix.health.record(ok)
        return self.prefix.damping.flipped(flip, self.now) if flip else None

    def flap(self, at, rise=1):
        """Down then up again at `at` (fall=1, rise=1 specs); returns the hold-down of the flap."""
        self.probe(False, at)
        for _probe in range(rise - 1):
            self.probe(True)
        return self.probe(True)

    def value(self, at=None):
        return self.prefix.value(self.now if at is None else at)


@pytest.fixture(name='clock')
def clock_fixture(prefix_spec):
    """A prefix with rise 1 and fall 1 (each probe flips) and the given damping, already announced once at t=0."""
    def make(**damping):
        clk = Clock(make_prefix(prefix_spec(rise=1, fall=1, **damping)))
        assert clk.probe(True, 0.0) is None, 'the first announcement is no flap'
        assert clk.value() == 1
        return clk
    return make


def test_a_single_blip_comes_back_after_rise_without_any_delay(prefix_spec):
    clk = Clock(make_prefix(prefix_spec()))  # the defaults: rise 3, fall 5, damping on
    for step in range(3):
        clk.probe(True, step * 0.4)
    assert clk.value() == 1
    for step in range(5):
        clk.probe(False, 10.0 + step * 0.03)
    assert clk.value() == 0
    assert clk.probe(True, 11.0) is None and clk.probe(True, 11.4) is None
    assert clk.probe(True, 11.8) == 0.0, 'a flap, not held down'
    assert clk.value(11.8) == 1, 'announced at the rise-th passing probe, as without damping'
    assert clk.prefix.next_change(11.8, 1) is None


def test_the_hold_down_starts_over_the_threshold_doubles_and_is_capped(clock):
    clk = clock(flap_threshold=3, flap_window=60, flap_hold=10, flap_hold_max=45)
    assert [clk.flap(at) for at in (1.0, 2.0, 3.0)] == [0.0, 0.0, 0.0]
    assert clk.value() == 1
    holds = []
    for at in (4.0, 5.0, 6.0, 7.0, 8.0):
        holds.append(clk.flap(at))
    assert holds == [10.0, 20.0, 40.0, 45.0, 45.0]
    assert clk.prefix.damping.held_until == 8.0 + 45.0
    assert clk.value(52.9) == 0
    assert clk.prefix.next_change(52.9, 0) == (53.0, 'hold-down-end')
    assert clk.value(53.0) == 1, 'announced when the hold-down ends'
    assert clk.prefix.next_change(53.0, 1) is None


def test_a_hold_down_is_never_shortened(clock):
    clk = clock(flap_threshold=1, flap_window=10, flap_hold=5, flap_hold_max=100)
    clk.flap(1.0)
    assert clk.flap(2.0) == 5.0 and clk.flap(3.0) == 10.0 and clk.flap(4.0) == 20.0
    # 15 s later the window holds one flap again (no hold of its own), but the running hold-down stays.
    assert clk.flap(19.0) == 0.0
    assert clk.prefix.damping.held_until == 24.0 and clk.value(23.9) == 0 and clk.value(24.0) == 1


def test_damping_decays_once_the_prefix_is_stable_for_a_window(clock):
    clk = clock(flap_threshold=2, flap_window=30, flap_hold=10, flap_hold_max=300)
    assert [clk.flap(at) for at in (1.0, 2.0, 3.0, 4.0)] == [0.0, 0.0, 10.0, 20.0]
    assert len(clk.prefix.damping.recent(33.9)) == 1 and not clk.prefix.damping.recent(34.0)
    # Stable for a window: the next blip comes back at once, and the growth starts again from flap_hold.
    assert clk.flap(40.0) == 0.0 and clk.value() == 1
    assert clk.flap(41.0) == 0.0 and clk.flap(42.0) == 10.0


@pytest.mark.parametrize('on_failure, failing', [('withdraw', 0), ('prepend', 4)])
def test_a_withdraw_is_never_delayed(clock, on_failure, failing):
    clk = clock(flap_threshold=1, flap_hold=100, flap_hold_max=100, on_failure=on_failure, prepend=3)
    clk.flap(1.0)
    assert clk.flap(2.0) == 100.0
    assert clk.value(2.0) == failing, 'held down: as if still failing'
    clk.prefix.drain(3.0)
    assert clk.value(3.0) == 0, 'held down and drained: withdrawn'
    clk.prefix.undrain()
    clk.probe(True, 150.0)
    assert clk.value() == 1
    clk.probe(False, 151.0)
    assert clk.value(151.0) == failing, 'the fall takes effect at the failing probe itself'


def test_threshold_zero_turns_damping_off(clock):
    clk = clock(flap_threshold=0)
    assert all(clk.flap(float(at)) == 0.0 and clk.value() == 1 for at in range(1, 50))
    assert len(clk.prefix.damping.recent(49.0)) == 49, 'flaps are still counted'


def test_a_reload_keeps_the_damping_and_the_drain(clock, prefix_spec):
    clk = clock(flap_threshold=1, flap_hold=30, flap_hold_max=30)
    clk.flap(1.0)
    clk.flap(2.0)
    clk.prefix.drain(3.0)
    reloaded = Prefix(prefix_spec(rise=1, fall=1, flap_threshold=1, flap_hold=30, flap_hold_max=30), clk.prefix.health, clk.prefix)
    assert reloaded.damping.held_until == 32.0 and reloaded.drained_at == 3.0
    assert reloaded.damping.recent(3.0) == [1.0, 2.0]


def simulate(spec, seconds=60.0, period=2.0, tail=30.0):
    """The application is down `period` s, up `period` s, ... for `seconds`, then up; probes on the spec's timing.

    Returns the times the prefix was announced (its value went from 0 to more), the last one after the flapping too.
    """
    prefix = make_prefix(spec)
    now, times, last = 0.0, [], 0
    while True:
        # Healthy before the flapping starts: the first announcement is no flap.
        up = now < 10.0 or now >= 10.0 + seconds or int((now - 10.0) // period) % 2 == 1
        flip = prefix.health.record(up)
        if flip:
            prefix.damping.flipped(flip, now)
        change = prefix.next_change(now, last)
        step = prefix.health.next_delay()
        if change is not None and change[0] < now + step:
            step = change[0] - now  # the daemon's timer: the value changes when the hold-down ends
        for at in (now, now + step):
            value = prefix.value(at)
            if value and not last:
                times.append(round(at - 10.0, 2))
            last = value
        now += step
        if now > 10.0 + seconds + tail:
            return times[1:]  # [0] is the one before the flapping


def test_an_application_flapping_every_2_s_for_60_s_is_announced_at_most_threshold_times(prefix_spec):
    undamped = simulate(prefix_spec(flap_threshold=0))
    assert len(undamped) == 15 and undamped[-1] < 60.0, undamped  # 15 cycles in 60 s
    damped = simulate(prefix_spec(), tail=400)  # the defaults: 5 flaps in 60 s, 10 s doubled, at most 300 s
    during = [at for at in damped if at < 60.0]
    assert len(during) == PREFIX_DEFAULTS['flap_threshold'], damped
    # Back once: held down flap_hold_max after its last rise (the last start at 58 s, rise 3 x 0.4 s).
    assert len(damped) == 6 and 58.0 + 300.0 <= damped[-1] <= 58.0 + 1.2 + 300.0 + 0.5, damped


@pytest.mark.parametrize('overrides, message', [
    ({'flap_threshold': -1}, 'prefixes[0].flap_threshold: must be an integer between 0 and 1000'),
    ({'flap_threshold': 2.5}, 'prefixes[0].flap_threshold: must be an integer between 0 and 1000'),
    ({'flap_window': 0}, 'prefixes[0].flap_window: must be a number between 1 and 86400'),
    ({'flap_hold': True}, 'prefixes[0].flap_hold: must be a number between 1 and 86400'),
    ({'flap_hold': 20, 'flap_hold_max': 10}, 'prefixes[0].flap_hold_max: must not be less than flap_hold (20)'),
])
def test_bad_damping_settings_name_the_field(prefix_spec, overrides, message):
    with pytest.raises(ConfigError) as err:
        prefix_spec(**overrides)
    assert str(err.value).startswith(message)


def test_damping_defaults():
    spec = validate_prefix({'prefix': PREFIX, 'checks': [{'type': 'tcp', 'host': '10.11.1.4', 'port': 80}]}, 'p')
    assert {k: spec[k] for k in ('flap_threshold', 'flap_window', 'flap_hold', 'flap_hold_max')} == {
        'flap_threshold': 5, 'flap_window': 60.0, 'flap_hold': 10.0, 'flap_hold_max': 300.0}


def test_metrics_show_the_flaps_and_the_hold_down(clock):
    clk = clock(flap_threshold=1, flap_hold=30, flap_hold_max=30)
    clk.flap(1.0)
    clk.flap(2.0)
    metrics = Metrics()
    metrics.flaps[PREFIX] = 2
    text = metrics.render({PREFIX: clk.prefix}, 10.0)
    assert 'anycast_healthcheck_flaps_total{prefix="%s"} 2' % PREFIX in text
    assert 'anycast_healthcheck_held_down{prefix="%s"} 1' % PREFIX in text
    assert 'anycast_healthcheck_held_down_until_timestamp_seconds{prefix="%s"} 32.0' % PREFIX in text
    text = metrics.render({PREFIX: clk.prefix}, 32.0)
    assert 'anycast_healthcheck_held_down{prefix="%s"} 0' % PREFIX in text
    assert 'anycast_healthcheck_held_down_until_timestamp_seconds{prefix="%s"} 0' % PREFIX in text


def test_the_daemon_holds_a_flapping_prefix_down_and_shows_it(tmp_path, daemon_path):
    backend = Backend()
    backend.start()
    timing = {'interval': 0.1, 'fast_interval': 0.02, 'timeout': 0.05, 'rise': 2, 'fall': 3,
              'flap_threshold': 2, 'flap_window': 30, 'flap_hold': 1.5, 'flap_hold_max': 1.5}
    ctx = start_daemon(tmp_path, daemon_path, [{'type': 'tcp', 'host': '127.0.0.1', 'port': backend.port}], **timing)
    try:
        announced(ctx)
        for _flap in range(2):  # two flaps: each comes back after rise
            backend.stop()
            wait_value(ctx, 0)
            backend.start()
            wait_value(ctx, 1, timeout=1)
        backend.stop()
        stopped = time.monotonic()
        assert wait_value(ctx, 0) - stopped < 0.5, 'the withdraw is not delayed'
        backend.start()
        started = time.monotonic()
        line = None
        while line is None and time.monotonic() < started + 3:
            line = next((json.loads(x) for x in (tmp_path / 'daemon.log').read_text().splitlines() if '"hold_down"' in x), None)
            time.sleep(0.01)
        assert line and line['prefix'] == PREFIX and line['seconds'] == 1.5 and line['flaps'] == 3, line
        status = json.loads(cli(ctx, 'status').stdout)['status'][PREFIX]
        assert status['state'] == 'withdrawn' and status['healthy'] is True and status['flaps_in_window'] == 3
        assert status['held_down_until'] == line['until']
        text = metrics_text(ctx)
        assert 'anycast_healthcheck_held_down{prefix="%s"} 1' % PREFIX in text
        assert 'anycast_healthcheck_flaps_total{prefix="%s"} 3' % PREFIX in text
        back = wait_value(ctx, 1, timeout=4)
        assert 1.5 <= back - started <= 1.5 + 0.5 + 0.5, 'back %.2f s after the backend (rise ~0.2 s + hold 1.5 s)' % (back - started)
        last = changes(ctx)[-1]
        assert (last['old'], last['new'], last['reason']) == ('withdrawn', 'announced', 'hold-down-end')
        assert json.loads(cli(ctx, 'status').stdout)['status'][PREFIX]['held_down_until'] is None
    finally:
        stop_daemon(ctx)
        backend.stop()
