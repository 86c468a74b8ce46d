"""The checker's Prometheus metrics: the families the alert rules and the dashboard read, and promtool's lint.

`make prometheus` runs this with ANYCAST_REQUIRE_PROMETHEUS=1: there a missing promtool fails instead of skipping.
"""

import os
import re
import shutil
import subprocess
import time
import urllib.request

import pytest

from anycast_healthcheck.config import ConfigError, validate_config, validate_prefix
from anycast_healthcheck.metrics import WITHDRAW_REASONS, Metrics, read_conntrack
from anycast_healthcheck.state import Health, Prefix
from test_daemon import PREFIX, Backend, announced, metrics_text, start_daemon, stop_daemon, wait_value

OTHER = '10.250.0.11/32'


def promtool():
    """promtool's path; skips when it is missing, unless the caller requires it (make prometheus)."""
    path = shutil.which('promtool')
    if not path:
        if os.environ.get('ANYCAST_REQUIRE_PROMETHEUS'):
            pytest.fail('promtool is missing: install the Debian package prometheus (make deps)')
        pytest.skip('promtool is missing (Debian package prometheus; make deps)')
    return path


def machine(prefix=PREFIX, healthy=True, drained_at=None):
    spec = validate_prefix({'prefix': prefix, 'checks': [{'type': 'tcp', 'host': '10.11.1.4', 'port': 80}]}, 'prefixes[0]')
    health = Health(spec)
    health.healthy = health.was_healthy = healthy
    state = Prefix(spec, health)
    if drained_at is not None:
        state.drain(drained_at)
    return state


def samples(text, name):
    """{labels text: value} of one family in an exposition text."""
    found = {}
    for line in text.splitlines():
        match = re.match(r'^%s(\{[^}]*\})? (\S+)$' % re.escape(name), line)
        if match:
            found[match.group(1) or ''] = float(match.group(2))
    return found


def conntrack_dir(tmp_path, count='1234\n', limit='262144\n'):
    directory = tmp_path / 'netfilter'
    directory.mkdir()
    if count is not None:
        (directory / 'nf_conntrack_count').write_text(count)
    if limit is not None:
        (directory / 'nf_conntrack_max').write_text(limit)
    return str(directory)


def test_withdraws_are_counted_by_reason_and_every_known_reason_starts_at_zero():
    metrics = Metrics()
    metrics.changed(PREFIX, 100.0, 1, 'rise')
    metrics.changed(PREFIX, 101.0, 0, 'fall')
    metrics.changed(PREFIX, 102.0, 1, 'rise')
    metrics.changed(PREFIX, 103.0, 0, 'fall')
    metrics.changed(PREFIX, 104.0, 4, 'drain')  # prepended: not a withdraw
    metrics.changed(PREFIX, 105.0, 0, 'drain-timeout')
    text = metrics.render({PREFIX: machine(), OTHER: machine(OTHER)}, 106.0)
    withdraws = samples(text, 'anycast_healthcheck_withdraws_total')
    assert withdraws['{prefix="%s",reason="fall"}' % PREFIX] == 2
    assert withdraws['{prefix="%s",reason="drain-timeout"}' % PREFIX] == 1
    assert withdraws['{prefix="%s",reason="drain"}' % PREFIX] == 0
    assert {key: value for key, value in withdraws.items() if OTHER in key} == {
        '{prefix="%s",reason="%s"}' % (OTHER, reason): 0 for reason in WITHDRAW_REASONS}
    assert samples(text, 'anycast_healthcheck_transitions_total')['{prefix="%s"}' % PREFIX] == 6
    assert '# TYPE anycast_healthcheck_withdraws_total counter' in text


def test_drain_start_is_the_drain_time_and_zero_when_not_drained():
    text = Metrics().render({PREFIX: machine(drained_at=1700000000.5), OTHER: machine(OTHER)}, 1700000100.0)
    starts = samples(text, 'anycast_healthcheck_drain_start_timestamp_seconds')
    assert starts == {'{prefix="%s"}' % PREFIX: 1700000000.5, '{prefix="%s"}' % OTHER: 0}
    assert samples(text, 'anycast_healthcheck_drained') == {'{prefix="%s"}' % PREFIX: 1, '{prefix="%s"}' % OTHER: 0}


def test_conntrack_entries_and_limit_come_from_the_kernel_files(tmp_path):
    metrics = Metrics()
    metrics.conntrack_dir = conntrack_dir(tmp_path)
    text = metrics.render({PREFIX: machine()}, 0.0)
    assert samples(text, 'anycast_healthcheck_conntrack_entries') == {'': 1234}
    assert samples(text, 'anycast_healthcheck_conntrack_entries_limit') == {'': 262144}


@pytest.mark.parametrize('count,limit', [(None, '65536\n'), ('12\n', None), ('twelve\n', '65536\n')])
def test_no_conntrack_metrics_when_the_kernel_files_are_missing_or_odd(tmp_path, count, limit):
    directory = conntrack_dir(tmp_path, count, limit)
    assert read_conntrack(directory) is None
    metrics = Metrics()
    metrics.conntrack_dir = directory
    assert 'conntrack' not in metrics.render({PREFIX: machine()}, 0.0)


def test_this_machine_s_conntrack_table_is_read_when_the_kernel_has_one():
    found = read_conntrack()
    if not os.path.exists('/proc/sys/net/netfilter/nf_conntrack_max'):
        assert found is None
    else:
        entries, limit = found
        assert 0 <= entries <= limit and limit > 0


def test_region_nvas_is_shown_only_when_configured():
    metrics = Metrics()
    assert 'region_nvas' not in metrics.render({PREFIX: machine()}, 0.0)
    metrics.region_nvas = 4
    assert samples(metrics.render({PREFIX: machine()}, 0.0), 'anycast_healthcheck_region_nvas') == {'': 4}


def test_region_nvas_is_a_count_of_route_server_peers():
    assert validate_config({'prefixes': []})['region_nvas'] == 0
    assert validate_config({'prefixes': [], 'region_nvas': 8})['region_nvas'] == 8
    for bad in (9, -1, 2.5, True, '2'):
        # The message starts with the key, so that the role's preflight names healthcheck_region_nvas.
        with pytest.raises(ConfigError, match=r'^region_nvas: must be an integer between 0 and 8'):
            validate_config({'prefixes': [], 'region_nvas': bad})
    with pytest.raises(ConfigError, match=r'^withdraw_deadline: must be a number between 1 and 60'):
        validate_config({'prefixes': [], 'withdraw_deadline': 99})


def test_every_family_passes_promtool_check_metrics(tmp_path):
    metrics = Metrics()
    metrics.conntrack_dir = conntrack_dir(tmp_path)
    metrics.region_nvas = 2
    metrics.failsafe_file = str(tmp_path / 'failsafe.json')
    metrics.observe(PREFIX, [{'name': 'http://10.11.1.4/health', 'ok': False, 'seconds': 0.25}])
    metrics.changed(PREFIX, 5.0, 0, 'fall')
    metrics.bird_view = {'values': {PREFIX: 0}, 'exported': {}, 'sessions': {'route_server_0': True, 'route_server_1': False}}
    text = metrics.render({PREFIX: machine(healthy=False, drained_at=3.0)}, 6.0)
    proc = subprocess.run([promtool(), 'check', 'metrics'], input=text, capture_output=True, text=True, check=False, timeout=30)
    assert proc.returncode == 0 and not proc.stdout.strip() and not proc.stderr.strip(), proc.stdout + proc.stderr


def test_the_running_daemon_counts_a_fall_and_shows_the_region_size(tmp_path, daemon_path):
    # The daemon as the role runs it: a backend fails, the prefix is withdrawn for `fall`, the counter says so.
    backend = Backend()
    backend.start()
    timing = {'interval': 0.1, 'fast_interval': 0.02, 'timeout': 0.05, 'rise': 2, 'fall': 3}
    ctx = start_daemon(tmp_path, daemon_path, [{'type': 'tcp', 'host': '127.0.0.1', 'port': backend.port}],
                       {'region_nvas': 3}, **timing)
    try:
        announced(ctx)
        backend.stop()
        wait_value(ctx, 0)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            text = metrics_text(ctx)
            if samples(text, 'anycast_healthcheck_withdraws_total').get('{prefix="%s",reason="fall"}' % PREFIX) == 1:
                break
            time.sleep(0.05)
        assert samples(text, 'anycast_healthcheck_withdraws_total')['{prefix="%s",reason="fall"}' % PREFIX] == 1, text
        assert samples(text, 'anycast_healthcheck_region_nvas') == {'': 3}
        with urllib.request.urlopen('http://127.0.0.1:%d/metrics' % ctx['metrics_port'], timeout=5) as resp:
            assert resp.headers['Content-Type'].startswith('text/plain; version=0.0.4')
    finally:
        stop_daemon(ctx)
