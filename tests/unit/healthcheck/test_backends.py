"""Per-backend health: a prefix with `backends` is announced while at least `min_healthy` of them pass
their `backend_checks`, and the checker writes which are healthy for the nat role's backend updater."""

import importlib.util
import json
import pathlib
import socket
import sys
import time

import pytest

from anycast_healthcheck.config import ConfigError, validate_config
from anycast_healthcheck.state import Backends, Health
from test_daemon import PREFIX, changes, start_daemon, stop_daemon, value

UPDATER = pathlib.Path(__file__).resolve().parents[3] / 'roles' / 'nat' / 'files' / 'anycast_nva_nat_backends.py'
TEMPLATE = [{'type': 'http', 'url': 'http://{backend}:8080/health'}]


def config(**prefix):
    return {'prefixes': [dict({'prefix': PREFIX, 'backends': ['10.11.1.4', '10.11.1.5'], 'backend_checks': TEMPLATE}, **prefix)]}


def test_backends_need_no_checks_of_their_own_and_get_min_healthy_1():
    spec = validate_config(config())['prefixes'][0]
    assert spec['checks'] == [] and spec['min_healthy'] == 1
    assert spec['backend_checks'] == TEMPLATE  # the template is kept as given


def test_a_prefix_without_backends_is_unchanged():
    spec = validate_config({'prefixes': [{'prefix': PREFIX, 'checks': [{'type': 'tcp', 'host': '10.11.1.4', 'port': 80}]}]})
    assert 'backends' not in spec['prefixes'][0]


@pytest.mark.parametrize('prefix, message', [
    ({'backends': []}, 'prefixes[0].backends: must be a non-empty list'),
    ({'backends': ['10.11.1.4', 'web1']}, 'prefixes[0].backends[1]: must be an IPv4 address'),
    ({'backends': ['10.11.1.4', '10.11.1.4']}, 'prefixes[0].backends: lists a backend twice'),
    ({'backend_checks': []}, 'prefixes[0].backend_checks: must be a non-empty list'),
    ({'backend_checks': [{'type': 'tcp', 'host': '10.11.1.4', 'port': 80}]}, 'prefixes[0].backend_checks[0]: must contain {backend}'),
    ({'backend_checks': [{'type': 'tcp', 'host': '{backend}', 'port': 0}]}, 'prefixes[0].backend_checks[0].port: must be an integer'),
    ({'backend_checks': [{'type': 'http', 'url': 'http://{backend}:8080/x', 'bogus': 1}]}, 'prefixes[0].backend_checks[0]: unknown option(s) bogus'),
    ({'min_healthy': 3}, 'prefixes[0].min_healthy: must be an integer between 1 and 2'),
    ({'min_healthy': 0}, 'prefixes[0].min_healthy: must be an integer between 1 and 1000'),
])
def test_bad_backends_name_the_field(prefix, message):
    with pytest.raises(ConfigError) as err:
        validate_config(config(**prefix))
    assert str(err.value).startswith(message), str(err.value)


def test_backend_checks_without_backends_are_refused():
    with pytest.raises(ConfigError, match=r'^prefixes\[0\].backend_checks: needs backends'):
        validate_config({'prefixes': [{'prefix': PREFIX, 'checks': [{'type': 'tcp', 'host': '10.11.1.4', 'port': 80}],
                                       'backend_checks': TEMPLATE}]})


def test_a_prefix_needs_checks_or_backends():
    with pytest.raises(ConfigError, match=r'^prefixes\[0\].checks: must be a non-empty list'):
        validate_config({'prefixes': [{'prefix': PREFIX, 'checks': []}]})


def feed(health, ok, times):
    for _count in range(times):
        health.record(ok)


def test_backends_state_counts_healthy_backends_against_min_healthy():
    spec = {'rise': 2, 'fall': 2, 'min_healthy': 1}
    healths = {'a': Health(spec), 'b': Health(spec)}
    state = Backends(spec, healths)
    assert not state.healthy  # fail closed
    feed(healths['a'], True, 2)
    assert state.update() == 'rise' and state.healthy and state.up() == ['a']
    feed(healths['b'], True, 2)
    assert state.update() is None
    feed(healths['a'], False, 2)
    assert state.update() is None and state.healthy  # one of two is enough
    feed(healths['b'], False, 2)
    assert state.update() == 'fall' and not state.healthy and state.was_healthy


def test_own_checks_must_pass_too_and_min_healthy_2():
    spec = {'rise': 1, 'fall': 1, 'min_healthy': 2}
    own, healths = Health(spec), {'a': Health(spec), 'b': Health(spec)}
    state = Backends(spec, healths, own)
    feed(healths['a'], True, 1)
    feed(healths['b'], True, 1)
    assert state.update() is None  # own checks not passed yet
    feed(own, True, 1)
    assert state.update() == 'rise'
    feed(healths['b'], False, 1)
    assert state.update() == 'fall'  # 1 of 2 is below min_healthy 2


class Listener:
    """A TCP listener on one loopback address; stop() makes connections to it fail (refused)."""

    def __init__(self, address, port):
        self.address, self.port, self.sock = address, port, None

    def start(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((self.address, self.port))
        self.sock.listen(128)

    def stop(self):
        self.sock.close()


def load_updater():
    spec = importlib.util.spec_from_file_location('anycast_nva_nat_backends', UPDATER)
    module = importlib.util.module_from_spec(spec)
    write, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    spec.loader.exec_module(module)
    sys.dont_write_bytecode = write
    return module


def wait_for(what, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if what():
            return time.monotonic()
        time.sleep(0.005)
    raise AssertionError('timed out')


def test_one_of_two_backends_down_keeps_the_prefix_and_tells_the_nat_updater(tmp_path, daemon_path):
    with socket.socket() as probe:
        probe.bind(('127.0.0.2', 0))
        port = probe.getsockname()[1]
    listeners = {a: Listener(a, port) for a in ('127.0.0.2', '127.0.0.3')}
    for listener in listeners.values():
        listener.start()
    health_file = tmp_path / 'backends.json'
    timing = {'interval': 0.1, 'fast_interval': 0.02, 'timeout': 0.05, 'rise': 2, 'fall': 3}
    ctx = start_daemon(tmp_path, daemon_path, [], {'backend_health_file': str(health_file)},
                       backends=list(listeners), backend_checks=[{'type': 'tcp', 'host': '{backend}', 'port': port}], **timing)
    try:
        def health():
            try:
                return json.loads(health_file.read_text())['prefixes']['10.250.0.10']
            except (OSError, ValueError, KeyError):
                return None
        wait_for(lambda: value(ctx) == 1 and health() == {'127.0.0.2': True, '127.0.0.3': True})

        listeners['127.0.0.2'].stop()
        stopped = time.monotonic()
        seen = wait_for(lambda: health() == {'127.0.0.2': False, '127.0.0.3': True})
        # fall x fast_interval + one interval, with slack for a loaded machine
        assert seen - stopped < 0.1 + 3 * 0.02 + 0.05 + 0.3
        time.sleep(0.5)
        assert value(ctx) == 1, 'one healthy backend of two keeps the prefix (min_healthy 1)'
        assert [c['reason'] for c in changes(ctx)] == ['rise']

        # What the nat role's updater makes of the file: every slot on the healthy backend.
        updater = load_updater()
        service = {'name': 'web', 'anycast_ip': '10.250.0.10', 'backends': list(listeners), 'map': 'm', 'per_backend': 12}
        maps = updater.wanted({'table': 't', 'services': [service]}, updater.read_health(str(health_file)))
        assert set(maps['m'].values()) == {'127.0.0.3'}

        listeners['127.0.0.3'].stop()
        wait_for(lambda: value(ctx) == 0)
        assert health() == {'127.0.0.2': False, '127.0.0.3': False}
        assert changes(ctx)[-1]['reason'] == 'fall'

        listeners['127.0.0.3'].start()
        wait_for(lambda: value(ctx) == 1)
        # The file is rewritten every reconcile_interval even without a change (the updater's staleness test).
        before = health_file.stat().st_mtime
        wait_for(lambda: health_file.stat().st_mtime > before, timeout=3)
    finally:
        stop_daemon(ctx)
