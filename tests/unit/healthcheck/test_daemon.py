"""The daemon as a process: real sockets and signals; BIRD's control socket is a recording stand-in.

The real BIRD, systemd unit and BGP peer are exercised by the Molecule scenario `healthcheck`.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from conftest import serve_http, stop_http

PREFIX = '10.250.0.10/32'
OTHER = '10.250.0.11/32'


class FakeBird:
    """Answers `configure` like BIRD's CLI and records when it was asked."""

    def __init__(self, path):
        self.configures = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(16)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return
            with conn:
                try:
                    conn.sendall(b'0001 BIRD 2.0.12 ready.\n')
                    if conn.makefile('rb').readline().strip() == b'configure':
                        self.configures.append(time.monotonic())
                        conn.sendall(b'0002-Reading configuration from /etc/bird/bird.conf\n0003 Reconfigured\n')
                except OSError:
                    pass  # the daemon was killed mid-conversation (a test does that on purpose)


class Backend:
    """A TCP listener the check connects to; stop() makes connections fail (refused)."""

    def __init__(self):
        self.sock = None
        self.port = None

    def start(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(('127.0.0.1', self.port or 0))
        self.port = self.sock.getsockname()[1]
        self.sock.listen(128)

    def stop(self):
        self.sock.close()


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def start_daemon(tmp_path, daemon_path, checks, **timing):
    """Run the daemon on a temporary configuration; return the test context."""
    bird = FakeBird(str(tmp_path / 'bird.ctl'))
    (tmp_path / 'withdrawn.conf').write_text('define ANYCAST_10_250_0_10 = 0;\ndefine ANYCAST_10_250_0_11 = 0;\n')
    (tmp_path / 'announce.conf').write_text('define ANYCAST_10_250_0_10 = 1;\n')  # stale: must be withdrawn at start
    metrics_port = free_port()
    config = {
        'bird_socket': str(tmp_path / 'bird.ctl'), 'state_file': str(tmp_path / 'announce.conf'),
        'withdrawn_file': str(tmp_path / 'withdrawn.conf'), 'control_socket': str(tmp_path / 'control.sock'),
        'drain_file': str(tmp_path / 'drain.json'), 'metrics_listen': '127.0.0.1:%d' % metrics_port,
        'metrics_textfile': str(tmp_path / 'anycast_healthcheck.prom'),
        'prefixes': [dict(prefix=PREFIX, checks=checks, **timing)],
    }
    config_path = tmp_path / 'config.json'
    config_path.write_text(json.dumps(config))
    log = open(tmp_path / 'daemon.log', 'w+', encoding='utf-8')  # pylint: disable=consider-using-with
    proc = subprocess.Popen([sys.executable, str(daemon_path), '--config', str(config_path), 'run'],  # pylint: disable=consider-using-with
                            stdout=log, stderr=subprocess.STDOUT)
    return {'tmp': tmp_path, 'proc': proc, 'log': log, 'bird': bird, 'config': config,
            'config_path': config_path, 'metrics_port': metrics_port, 'daemon': daemon_path}


def stop_daemon(ctx):
    """Kill the daemon if a test left it running."""
    if ctx['proc'].poll() is None:
        ctx['proc'].kill()
        ctx['proc'].wait()
    ctx['log'].close()


@pytest.fixture
def setup(tmp_path, daemon_path):
    backend = Backend()
    backend.start()
    timing = {'interval': 0.1, 'fast_interval': 0.02, 'timeout': 0.05, 'rise': 2, 'fall': 3, 'drain_withdraw_after': 0.6}
    ctx = start_daemon(tmp_path, daemon_path, [{'type': 'tcp', 'host': '127.0.0.1', 'port': backend.port}], **timing)
    ctx['backend'] = backend
    yield ctx
    stop_daemon(ctx)


def value(ctx, prefix=PREFIX):
    name = 'ANYCAST_' + prefix.split('/')[0].replace('.', '_')
    match = re.search(r'define %s = (\d+);' % name, (ctx['tmp'] / 'announce.conf').read_text())
    return int(match.group(1)) if match else None


def wait_value(ctx, wanted, timeout=5.0, prefix=PREFIX):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value(ctx, prefix) == wanted:
            return time.monotonic()
        time.sleep(0.005)
    raise AssertionError('%s never reached %s; log:\n%s' % (prefix, wanted, (ctx['tmp'] / 'daemon.log').read_text()))


def changes(ctx):
    lines = (ctx['tmp'] / 'daemon.log').read_text().splitlines()
    return [json.loads(line) for line in lines if '"state_change"' in line]


def cli(ctx, *args):
    return subprocess.run([sys.executable, str(ctx['daemon']), '--config', str(ctx['config_path'])] + list(args),
                          capture_output=True, text=True, check=False, timeout=10)


def test_lifecycle(setup):  # pylint: disable=redefined-outer-name,too-many-statements
    ctx = setup
    # Fail closed: the stale "announced" file is withdrawn before the first probe result.
    wait_value(ctx, 0, timeout=2)
    announced_at = wait_value(ctx, 1)
    assert ctx['bird'].configures and ctx['bird'].configures[-1] - announced_at < 0.2, 'BIRD must be reconfigured at once'
    first = changes(ctx)
    assert [(c['old'], c['new'], c['reason']) for c in first] == [('withdrawn', 'announced', 'rise')]
    assert first[0]['prefix'] == PREFIX and first[0]['checks'][0]['ok'] is True

    # Backend down: withdrawn within fall x fast_interval + one interval (+ slack for a loaded CI machine).
    ctx['backend'].stop()
    stopped = time.monotonic()
    withdrawn_at = wait_value(ctx, 0)
    assert withdrawn_at - stopped < 0.1 + 3 * 0.02 + 0.05 + 0.3
    last = changes(ctx)[-1]
    assert (last['old'], last['new'], last['reason']) == ('announced', 'withdrawn', 'fall')
    assert last['checks'][0]['ok'] is False

    # Back: announced again after rise.
    ctx['backend'].start()
    wait_value(ctx, 1)

    # Metrics endpoint on loopback.
    with urllib.request.urlopen('http://127.0.0.1:%d/metrics' % ctx['metrics_port'], timeout=5) as resp:
        metrics = resp.read().decode()
    assert 'anycast_healthcheck_announce_value{prefix="%s"} 1' % PREFIX in metrics
    assert 'anycast_healthcheck_transitions_total{prefix="%s"} 3' % PREFIX in metrics
    assert re.search(r'anycast_healthcheck_check_duration_seconds\{prefix="%s",check="tcp://127.0.0.1:\d+"\} [0-9.e-]+' % re.escape(PREFIX), metrics)

    # The node_exporter textfile is rewritten on every change, right after BIRD has been
    # reconfigured (the state file is written before that, so allow the reconfigure to finish).
    wanted = 'anycast_healthcheck_prefix_state{prefix="%s",state="announced"} 1' % PREFIX
    textfile_path = ctx['tmp'] / 'anycast_healthcheck.prom'
    deadline = time.monotonic() + 2.0
    while wanted not in textfile_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert wanted in textfile_path.read_text()

    # Drain: prepended at once, withdrawn after drain_withdraw_after, restored by undrain.
    result = cli(ctx, 'drain', '10.250.0.10')
    assert result.returncode == 0, result.stderr
    wait_value(ctx, 4, timeout=0.5)
    wait_value(ctx, 0, timeout=2)
    assert json.loads((ctx['tmp'] / 'drain.json').read_text()).keys() == {PREFIX}
    drain, timeout = changes(ctx)[-2:]
    assert (drain['reason'], drain['new'], timeout['reason'], timeout['new']) == ('drain', 'prepended', 'drain-timeout', 'withdrawn')
    # The daemon's own timestamps (ms): withdrawn drain_withdraw_after (0.6 s) after the drain.
    assert 0.59 <= timeout['ts'] - drain['ts'] <= 0.9
    result = cli(ctx, 'undrain')
    assert result.returncode == 0, result.stderr
    wait_value(ctx, 1, timeout=0.5)
    assert cli(ctx, 'drain', '10.9.9.9/32').returncode == 1

    # SIGHUP with one more prefix: the unchanged prefix keeps its state (no change logged).
    count = len(changes(ctx))
    config = dict(ctx['config'])
    config['prefixes'] = config['prefixes'] + [dict(config['prefixes'][0], prefix=OTHER)]
    ctx['config_path'].write_text(json.dumps(config))
    ctx['proc'].send_signal(signal.SIGHUP)
    wait_value(ctx, 1, prefix=OTHER)
    assert value(ctx) == 1
    assert [c['prefix'] for c in changes(ctx)[count:]] == [OTHER]

    # An invalid configuration on SIGHUP is refused; the daemon keeps running as before.
    ctx['config_path'].write_text(json.dumps({'prefixes': [{'prefix': PREFIX, 'checks': [], 'rise': 0}]}))
    ctx['proc'].send_signal(signal.SIGHUP)
    time.sleep(0.3)
    assert ctx['proc'].poll() is None and value(ctx) == 1
    assert '"reload_failed"' in (ctx['tmp'] / 'daemon.log').read_text()

    # SIGTERM: everything withdrawn, one line per prefix, clean exit.
    ctx['proc'].send_signal(signal.SIGTERM)
    assert ctx['proc'].wait(timeout=5) == 0
    assert value(ctx) == 0 and value(ctx, OTHER) == 0
    assert sorted(c['prefix'] for c in changes(ctx) if c['reason'] == 'stop') == [PREFIX, OTHER]


def test_withdraw_all_after_sigkill(setup):  # pylint: disable=redefined-outer-name
    ctx = setup
    wait_value(ctx, 1)
    ctx['proc'].send_signal(signal.SIGKILL)
    ctx['proc'].wait(timeout=5)
    assert value(ctx) == 1, 'a killed process cannot clean up: that is what ExecStopPost is for'
    result = cli(ctx, 'withdraw-all')
    assert result.returncode == 0, result.stderr
    assert value(ctx) == 0
    assert os.stat(ctx['tmp'] / 'announce.conf').st_mode & 0o777 == 0o640


def test_withdraw_all_with_a_broken_configuration_still_withdraws(setup):  # pylint: disable=redefined-outer-name
    ctx = setup
    wait_value(ctx, 1)
    ctx['proc'].send_signal(signal.SIGKILL)
    ctx['proc'].wait(timeout=5)
    broken = dict(ctx['config'], prefixes=[{'prefix': PREFIX, 'checks': [], 'rise': 0}])
    ctx['config_path'].write_text(json.dumps(broken))
    result = cli(ctx, 'withdraw-all')
    assert result.returncode == 0
    assert 'invalid configuration' in result.stderr
    assert value(ctx) == 0 and value(ctx, OTHER) == 0


def test_a_hung_backend_is_withdrawn_about_as_fast_as_a_dead_one(tmp_path, daemon_path):
    # An HTTP backend that accepts connections (kernel backlog) but never answers: every
    # probe times out. Rounds overlap, so fall failures take one timeout plus fall - 1
    # fast intervals, not fall timeouts.
    hung = socket.socket()
    hung.bind(('127.0.0.1', 0))
    hung.listen(1024)
    port = hung.getsockname()[1]
    backend = Backend()
    backend.start()
    timing = {'interval': 0.2, 'fast_interval': 0.02, 'timeout': 0.15, 'rise': 2, 'fall': 5}
    ctx = start_daemon(tmp_path, daemon_path, [{'type': 'http', 'url': 'http://127.0.0.1:%d/' % backend.port, 'expect_status': [200, 400, 404, 501]}], **timing)
    try:
        httpd = threading.Thread(target=serve_http, args=(backend.sock,), daemon=True)
        httpd.start()
        wait_value(ctx, 0, timeout=2)  # the daemon is up (it withdrew the stale state)
        wait_value(ctx, 1)
        # Point the check at the hung listener through a reload (same prefix, new check).
        config = dict(ctx['config'])
        config['prefixes'] = [dict(config['prefixes'][0], checks=[{'type': 'http', 'url': 'http://127.0.0.1:%d/' % port}])]
        ctx['config_path'].write_text(json.dumps(config))
        switched = time.monotonic()
        ctx['proc'].send_signal(signal.SIGHUP)
        withdrawn_at = wait_value(ctx, 0)
        # interval + timeout + (fall - 1) x fast_interval = 0.43 s; sequential probes would need 0.2 + 5 x 0.15 = 0.95 s.
        print('hung backend withdrawn after %.3f s' % (withdrawn_at - switched))
        assert withdrawn_at - switched < 0.43 + 0.25
        assert 'timeout after 0.15s' in changes(ctx)[-1]['checks'][0]['detail']
    finally:
        stop_daemon(ctx)
        hung.close()


def keepalive_daemon(tmp_path, daemon_path, idle_timeout=30, **timing):
    """A daemon whose one HTTP check probes a keep-alive backend; returns (ctx, listener, record)."""
    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(128)
    record = {}
    answer = b'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n'
    threading.Thread(target=serve_http, args=(listener, answer, 0.0, None, idle_timeout, record), daemon=True).start()
    ctx = start_daemon(tmp_path, daemon_path, [{'type': 'http', 'url': 'http://127.0.0.1:%d/' % listener.getsockname()[1]}], **timing)
    try:
        deadline = time.monotonic() + 5
        while not changes(ctx) and time.monotonic() < deadline:  # the rise (the stale state file says announced too)
            time.sleep(0.005)
        wait_value(ctx, 1)  # the rise is logged before the state file is written
    except AssertionError:
        stop_daemon(ctx)
        raise
    return ctx, listener, record


def after_a_round(record, interval):
    """Wait until a round has just been answered (the next regular one is about `interval` away)."""
    seen = len(record['requests'])
    deadline = time.monotonic() + 3 * interval
    while len(record['requests']) == seen and time.monotonic() < deadline:
        time.sleep(0.002)
    assert len(record['requests']) > seen, 'no probe arrived'
    time.sleep(0.05)


def test_a_kept_connection_closed_by_the_server_brings_one_early_probe(tmp_path, daemon_path):
    ctx, listener, record = keepalive_daemon(tmp_path, daemon_path, interval=1.0, fast_interval=0.02, timeout=0.2, rise=1, fall=3)
    try:
        after_a_round(record, 1.0)
        assert len(record['conns']) == 1, 'every probe so far used one connection'
        closed = time.monotonic()
        record['conns'][0].shutdown(socket.SHUT_RDWR)  # the server ends the idle connection
        time.sleep(0.5)
        early = [t - closed for t in record['requests'] if t > closed]
        # One probe at once on a new connection (not at the next tick, at least 0.45 s away), and only one.
        assert len(early) == 1 and early[0] < 0.2, early
        assert len(record['conns']) == 2 and value(ctx) == 1
    finally:
        stop_daemon(ctx)
        listener.close()


def test_a_server_with_a_short_idle_timeout_brings_no_probe_storm(tmp_path, daemon_path):
    # The server closes idle connections after 0.05 s, long before the next round: one early
    # probe per round at most (it reconnects and passes), and the prefix stays announced.
    ctx, listener, record = keepalive_daemon(tmp_path, daemon_path, idle_timeout=0.05, interval=0.5, fast_interval=0.02,
                                             timeout=0.2, rise=1, fall=3)
    try:
        start, count = time.monotonic(), len(record['requests'])
        time.sleep(2.0)
        assert len(record['requests']) - count <= 2 * 2.0 / 0.5 + 2
        assert value(ctx) == 1 and len(changes(ctx)) == 1
        assert time.monotonic() - start < 2.5
    finally:
        stop_daemon(ctx)
        listener.close()


def test_a_stopped_keepalive_server_is_withdrawn_without_waiting_for_the_interval(tmp_path, daemon_path):
    # interval x fall = 6 s; the next regular round after the stop is about 2 s away. The kept
    # connection's close starts the fast confirmations at once: one probe, then fall - 1 fast ones.
    ctx, listener, record = keepalive_daemon(tmp_path, daemon_path, interval=2.0, fast_interval=0.02, timeout=0.2, rise=1, fall=3)
    try:
        after_a_round(record, 2.0)
        stopped = time.monotonic()
        stop_http(listener, record)
        withdrawn_at = wait_value(ctx, 0)
        print('stopped keep-alive server withdrawn after %.3f s' % (withdrawn_at - stopped))
        assert withdrawn_at - stopped < 0.5
        assert changes(ctx)[-1]['reason'] == 'fall'
    finally:
        stop_daemon(ctx)
