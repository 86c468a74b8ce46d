"""NVA self-checks (selfcheck.py): each check on fake files and a fake systemctl, the gate on every prefix,
their configuration, and a real daemon that withdraws every prefix while one fails and comes back after rise."""

import asyncio
import json
import os
import time

import pytest

from anycast_healthcheck.config import ConfigError, validate_config, validate_prefix
from anycast_healthcheck.selfcheck import (SelfChecks, check_bgp, check_conntrack, check_ip_forward, check_nat_table,
                                           check_sync)
from anycast_healthcheck.state import Health, Prefix
from test_daemon import PREFIX, Backend, changes, cli, metrics_text, start_daemon, stop_daemon, wait_value

CONF = validate_config({'prefixes': []})['self_checks']


def conntrack_dir(tmp_path, count, limit=1000):
    (tmp_path / 'nf_conntrack_count').write_text('%d\n' % count)
    (tmp_path / 'nf_conntrack_max').write_text('%d\n' % limit)
    return str(tmp_path)


def test_ip_forward(tmp_path):
    path = tmp_path / 'ip_forward'
    path.write_text('1\n')
    assert check_ip_forward(CONF, str(path)) == (True, 'net.ipv4.ip_forward = 1')
    path.write_text('0\n')
    assert check_ip_forward(CONF, str(path)) == (False, 'net.ipv4.ip_forward = 0')
    assert check_ip_forward(CONF, str(tmp_path / 'missing'))[0] is False


@pytest.mark.parametrize('count, ok', [(0, True), (899, True), (900, False), (1000, False)])
def test_conntrack_keeps_its_headroom(tmp_path, count, ok):
    # Headroom 10 %: 900 of 1000 entries is already too many.
    verdict = check_conntrack(CONF, conntrack_dir(tmp_path, count))
    assert verdict[0] is ok
    assert verdict[1].startswith('%d of 1000 entries' % count)


def test_conntrack_unreadable_fails(tmp_path):
    assert check_conntrack(CONF, str(tmp_path)) == (False, 'cannot read nf_conntrack_count and nf_conntrack_max')


def test_nat_table_status_file(tmp_path):
    conf = dict(CONF, nat_status_file=str(tmp_path / 'status'))
    assert check_nat_table(conf)[0] is False  # no watcher yet
    (tmp_path / 'status').write_text('present\n')
    assert check_nat_table(conf) == (True, 'present')
    (tmp_path / 'status').write_text('absent\n')
    assert check_nat_table(conf) == (False, 'absent')
    (tmp_path / 'status').write_text('present\n')
    ok, detail = check_nat_table(conf, now=time.time() + 6)  # the watcher stopped writing 6 s ago
    assert not ok and 'not rewritten for 6 s' in detail


def test_bgp_needs_one_established_session():
    up = {'sessions': {'route_server_0': False, 'route_server_1': True}, 'values': {}, 'exported': {}}
    down = {'sessions': {'route_server_0': False, 'route_server_1': False}, 'values': {}, 'exported': {}}
    assert check_bgp(CONF, up) == (True, 'Established: route_server_1')
    assert check_bgp(CONF, down) == (False, 'no BGP session Established (route_server_0, route_server_1)')
    assert check_bgp(CONF, None) == (False, "BIRD's control socket does not answer")
    # The last resort disabled them itself: that withdraw is already its own.
    assert check_bgp(CONF, down, ['route_server_0', 'route_server_1'])[0] is True


@pytest.fixture
def fake_systemctl(tmp_path, monkeypatch):
    """A `systemctl is-active` that answers from tmp_path/states (one state per unit, in order)."""
    script = tmp_path / 'systemctl'
    script.write_text('#!/bin/sh\ncat "%s"\ngrep -qv "^active$" "%s" && exit 3\nexit 0\n' % (tmp_path / 'states', tmp_path / 'states'))
    script.chmod(0o755)
    monkeypatch.setenv('PATH', '%s:%s' % (tmp_path, os.environ['PATH']))
    return tmp_path / 'states'


def test_sync_units_must_be_active(fake_systemctl):
    fake_systemctl.write_text('active\nactive\n')
    assert asyncio.run(check_sync(CONF)) == (True, 'anycast-sync-relay.service active, conntrackd.service active')
    fake_systemctl.write_text('inactive\nactive\n')
    assert asyncio.run(check_sync(CONF)) == (False, 'anycast-sync-relay.service inactive, conntrackd.service active')


def test_self_checks_report_changes_and_gate_every_prefix(tmp_path):
    forward = tmp_path / 'ip_forward'
    forward.write_text('1\n')
    conf = dict(CONF, nat_table=False, conntrack=False, bgp=False)
    checks = SelfChecks(conf)
    assert checks.enabled == ['ip_forward'] and checks.ok is False, 'nothing is announced before the first check'
    spec = validate_prefix({'prefix': PREFIX, 'checks': [{'type': 'tcp', 'host': '127.0.0.1', 'port': 80}]}, 'p')
    prefix = Prefix(spec, Health(spec), None, checks)
    for _probe in range(spec['rise']):
        prefix.health.record(True)
    assert prefix.value(0) == 0
    original = check_ip_forward.__defaults__
    check_ip_forward.__defaults__ = (str(forward),)
    try:
        assert asyncio.run(checks.run(None)) == ['ip_forward']
        assert checks.ok and prefix.value(0) == 1
        assert asyncio.run(checks.run(None)) == [], 'no change, no report'
        forward.write_text('0\n')
        assert asyncio.run(checks.run(None)) == ['ip_forward']
        assert checks.results['ip_forward']['detail'] == 'net.ipv4.ip_forward = 0'
        assert prefix.value(0) == 0
        # on_failure=prepend does not keep a route out of a failing NVA either.
        assert Prefix(dict(spec, on_failure='prepend'), prefix.health, None, checks).value(0) == 0
        # A reload keeps the results and the verdict until the next run; a check it enables counts from its first run.
        assert SelfChecks(conf, checks).ok is False
        forward.write_text('1\n')
        asyncio.run(checks.run(None))
        reloaded = SelfChecks(dict(conf, conntrack=True), checks)
        assert reloaded.enabled == ['ip_forward', 'conntrack'] and reloaded.ok is True
    finally:
        check_ip_forward.__defaults__ = original


def test_a_silent_bird_socket_keeps_the_bgp_verdict():
    conf = dict(CONF, nat_table=False, ip_forward=False, conntrack=False)
    checks = SelfChecks(conf)
    assert asyncio.run(checks.run(None)) == ['bgp'] and not checks.ok, 'no answer yet: failed'
    up = {'sessions': {'route_server_0': True}, 'values': {}, 'exported': {}}
    assert asyncio.run(checks.run(up)) == ['bgp'] and checks.ok
    assert asyncio.run(checks.run(None)) == [] and checks.ok, "the announcer's deadline and last resort handle a silent socket"


def test_health_restart_needs_rise_again():
    spec = validate_prefix({'prefix': PREFIX, 'checks': [{'type': 'tcp', 'host': '127.0.0.1', 'port': 80}]}, 'p')
    health = Health(spec)
    flips = [health.record(True) for _probe in range(spec['rise'])]
    assert flips[-1] == 'rise'
    health.restart()
    assert not health.healthy
    assert [health.record(True) for _probe in range(spec['rise'])] == [None] * (spec['rise'] - 1) + ['rise']


@pytest.mark.parametrize('self_checks, message', [
    ({'ip_forward': 'yes'}, 'self_checks.ip_forward: must be true or false'),
    ({'conntrack_headroom': 0}, 'self_checks.conntrack_headroom: must be an integer between 1 and 99'),
    ({'conntrack_headroom': 100}, 'self_checks.conntrack_headroom: must be an integer between 1 and 99'),
    ({'sync_units': []}, 'self_checks.sync_units: must be a non-empty list'),
    ({'nat_status_file': 'status'}, 'self_checks.nat_status_file: must be an absolute path'),
    ({'bgpp': True}, 'self_checks: unknown option(s) bgpp'),
    ([], 'self_checks: must be a mapping'),
])
def test_bad_self_checks_name_the_field(self_checks, message):
    with pytest.raises(ConfigError, match='^' + message.replace('(', r'\(').replace(')', r'\)')):
        validate_config({'prefixes': [], 'self_checks': self_checks})


def test_bad_fresh_interval_names_the_field():
    with pytest.raises(ConfigError, match=r'^p.fresh_interval: must be a number between 0 and 3600'):
        validate_prefix({'prefix': PREFIX, 'fresh_interval': -1, 'checks': [{'type': 'tcp', 'host': '127.0.0.1', 'port': 80}]}, 'p')


def test_role_self_check_defaults_equal_the_daemon_defaults(daemon_path):
    yaml = pytest.importorskip('yaml')
    role = daemon_path.parents[1]
    defaults = yaml.safe_load((role / 'defaults' / 'main.yml').read_text())
    specs = yaml.safe_load((role / 'meta' / 'argument_specs.yml').read_text())['argument_specs']['main']['options']
    role_vars = yaml.safe_load((role / 'vars' / 'main.yml').read_text())
    nat_vars = yaml.safe_load((role.parent / 'nat' / 'vars' / 'main.yml').read_text())
    for key in ('nat_table', 'ip_forward', 'conntrack', 'conntrack_headroom', 'bgp'):
        assert defaults['healthcheck_self_check_' + key] == specs['healthcheck_self_check_' + key]['default'] == CONF[key], key
    assert role_vars['healthcheck__nat_table'] == nat_vars['nat__table']
    assert role_vars['healthcheck__nat_status_file'] == CONF['nat_status_file']
    assert role_vars['healthcheck__config']['self_checks']['sync_units'] == CONF['sync_units']


def test_a_failing_self_check_withdraws_every_prefix_until_rise(tmp_path, daemon_path):
    status = tmp_path / 'nat-status'
    status.write_text('present\n')
    backend = Backend()
    backend.start()
    timing = {'interval': 0.1, 'fast_interval': 0.02, 'timeout': 0.05, 'rise': 3, 'fall': 3}
    settings = {'reconcile_interval': 0.2, 'self_checks': {'nat_table': True, 'ip_forward': False, 'conntrack': False,
                                                           'nat_status_file': str(status)}}
    ctx = start_daemon(tmp_path, daemon_path, [{'type': 'tcp', 'host': '127.0.0.1', 'port': backend.port}], settings, **timing)
    try:
        wait_value(ctx, 0, timeout=2)
        wait_value(ctx, 1)
        status.write_text('absent\n')
        broken = time.monotonic()
        withdrawn = wait_value(ctx, 0)
        assert withdrawn - broken <= 0.2 + 0.1, 'one reconcile interval (0.2 s) and a push'
        assert changes(ctx)[-1]['reason'] == 'self-check'
        reply = json.loads(cli(ctx, 'status').stdout)
        assert reply['self_checks']['nat_table']['ok'] is False and reply['self_checks']['nat_table']['detail'] == 'absent'
        assert reply['self_checks']['bgp']['ok'] is True
        assert reply['status'][PREFIX]['state'] == 'withdrawn'
        text = metrics_text(ctx)
        assert 'anycast_healthcheck_self_check_ok{check="nat_table"} 0' in text
        assert 'anycast_healthcheck_withdraws_total{prefix="%s",reason="self-check"} 1' % PREFIX in text
        time.sleep(0.5)  # probes keep passing meanwhile: they must not count towards the rise
        status.write_text('present\n')
        repaired = time.monotonic()
        back = wait_value(ctx, 1)
        assert back - repaired >= (timing['rise'] - 1) * timing['interval'], 'back only after rise passing probes'
        lines = [json.loads(line) for line in (tmp_path / 'daemon.log').read_text().splitlines() if '"self_check"' in line]
        assert [(line['check'], line['ok']) for line in lines] == [('nat_table', True), ('bgp', True), ('nat_table', False),
                                                                   ('nat_table', True)]
        print('self-check broken -> withdrawn %.3f s; repaired -> announced %.3f s' % (withdrawn - broken, back - repaired))
    finally:
        stop_daemon(ctx)
