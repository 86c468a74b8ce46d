"""The health checker's package (roles/healthcheck/files/anycast_healthcheck, on pytest's pythonpath: pytest.ini).

The tests import its modules normally (`from anycast_healthcheck.config import ...`) and run
the daemon as the role does, through its launcher (`python3 LAUNCHER --config FILE run`).
"""

import getpass
import pathlib
import socket
import subprocess
import sys
import threading
import time

import pytest

FILES = pathlib.Path(__file__).resolve().parents[3] / 'roles' / 'healthcheck' / 'files'
DAEMON = FILES / 'anycast-healthcheck.py'  # the launcher the role installs beside the package

# The role copies the package directory as it is: no __pycache__ may appear in it. Importing
# the command line imports every module of the package, so none is compiled to a file later.
_DONT_WRITE_BYTECODE, sys.dont_write_bytecode = sys.dont_write_bytecode, True
import anycast_healthcheck.cli  # noqa: E402,F401  pylint: disable=wrong-import-position,unused-import
from anycast_healthcheck.config import validate_prefix  # noqa: E402  pylint: disable=wrong-import-position
sys.dont_write_bytecode = _DONT_WRITE_BYTECODE


@pytest.fixture(name='command_runner')
def fixture_command_runner(tmp_path):
    """The command runner as the role runs it (`run-commands`), serving this test's user; yields its socket."""
    path = tmp_path / 'runner.sock'
    proc = subprocess.Popen([sys.executable, '-I', str(DAEMON), 'run-commands', '--socket', str(path),
                             '--client-user', getpass.getuser()], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while not path.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() is not None else 'no socket'
        time.sleep(0.02)
    yield str(path)
    proc.terminate()
    proc.wait(5)


def serve_http(listener, answer=b'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n', delay=0.0, split=None, idle_timeout=None, record=None):
    """Answer every request on `listener` with `answer` (after `delay`, optionally in two parts) until it is closed.

    One request per connection, then close; with `idle_timeout` (seconds) a connection stays
    open for more requests (HTTP/1.1 keep-alive, a thread each) until it is idle that long.
    `record` (a dict) collects the accepted sockets under 'conns' and the request times under 'requests'.
    """
    record = {} if record is None else record
    record.setdefault('conns', [])
    record.setdefault('requests', [])
    while True:
        try:
            conn, _addr = listener.accept()
        except OSError:
            return
        record['conns'].append(conn)
        args = (conn, answer, delay, split, idle_timeout, record['requests'])
        if idle_timeout is None:
            _answer(*args)
        else:
            threading.Thread(target=_answer, args=args, daemon=True).start()


def _answer(conn, answer, delay, split, idle_timeout, requests):
    with conn:
        conn.settimeout(idle_timeout)
        try:
            while conn.recv(4096):  # a probe's request comes in one piece
                requests.append(time.monotonic())
                time.sleep(delay)
                if split:
                    conn.sendall(answer[:split])
                    time.sleep(0.05)
                    conn.sendall(answer[split:])
                else:
                    conn.sendall(answer)
                if idle_timeout is None:
                    return
        except OSError:
            pass  # idle timeout, or the client reset the connection


def stop_http(listener, record):
    """Stop a server like a killed process: no more listener, every connection closed."""
    listener.shutdown(socket.SHUT_RDWR)  # a bare close() would leave it listening while accept() blocks on it
    listener.close()
    for conn in record['conns']:
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # closed already


@pytest.fixture(scope='session')
def daemon_path():
    """Path of the daemon's launcher (it runs the package beside it)."""
    return DAEMON


@pytest.fixture
def prefix_spec():
    """A validated prefix with one TCP check and the daemon's defaults."""
    def make(**overrides):
        spec = {'prefix': '10.250.0.10/32', 'checks': [{'type': 'tcp', 'host': '10.11.1.4', 'port': 80}]}
        spec.update(overrides)
        return validate_prefix(spec, 'prefixes[0]')
    return make
