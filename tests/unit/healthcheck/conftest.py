"""Load the health checker (a script installed by the role, not a package) as a module."""

import importlib.util
import pathlib
import time

import pytest

DAEMON = pathlib.Path(__file__).resolve().parents[3] / 'roles' / 'healthcheck' / 'files' / 'anycast_healthcheck.py'


def serve_http(listener, answer=b'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n', delay=0.0, split=None):
    """Answer every connection on `listener` with `answer` (after `delay`, optionally in two parts) until it is closed."""
    while True:
        try:
            conn, _addr = listener.accept()
        except OSError:
            return
        with conn:
            conn.recv(4096)
            time.sleep(delay)
            if split:
                conn.sendall(answer[:split])
                time.sleep(0.05)
                conn.sendall(answer[split:])
            else:
                conn.sendall(answer)


@pytest.fixture(scope='session')
def daemon_path():
    """Path of the daemon script."""
    return DAEMON


@pytest.fixture(scope='session')
def hc():
    """The anycast_healthcheck module."""
    spec = importlib.util.spec_from_file_location('anycast_healthcheck', DAEMON)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def prefix_spec(hc):
    """A validated prefix with one TCP check and the daemon's defaults."""
    def make(**overrides):
        spec = {'prefix': '10.250.0.10/32', 'checks': [{'type': 'tcp', 'host': '10.11.1.4', 'port': 80}]}
        spec.update(overrides)
        return hc.validate_prefix(spec, 'prefixes[0]')
    return make
