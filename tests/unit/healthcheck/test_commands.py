"""The command runner (run-commands) as a real process: whom it serves, and what it answers to bad requests."""

import getpass
import json
import socket
import subprocess
import sys
import time

from anycast_healthcheck.config import validate_config

from conftest import DAEMON


def ask(path, line):
    """Send one raw request line to the runner; return its JSON reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(path)
        sock.sendall(line)
        data = b''
        while not data.endswith(b'\n'):
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    return json.loads(data)


def test_the_runner_serves_the_checkers_user_only(tmp_path):
    # A runner for user nobody: this test's user (not nobody) is refused and nothing runs.
    assert getpass.getuser() != 'nobody'
    path, witness = tmp_path / 'runner.sock', tmp_path / 'ran'
    proc = subprocess.Popen([sys.executable, '-I', str(DAEMON), 'run-commands', '--socket', str(path), '--client-user', 'nobody'],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while not path.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        reply = ask(str(path), (json.dumps({'argv': ['/usr/bin/touch', str(witness)]}) + '\n').encode())
        time.sleep(0.2)
    finally:
        proc.terminate()
        log = proc.communicate(timeout=5)[0].decode()
    assert reply == {'error': "refused: only the checker's user may run checks"}
    assert not witness.exists()
    assert '"event": "command_request_refused"' in log


def test_bad_requests_get_an_error_naming_what_is_wrong(command_runner):
    assert ask(command_runner, b'[1, 2]\n') == {'error': 'request: must be a JSON object'}
    assert ask(command_runner, b'not json\n') == {'error': 'request: not a JSON line'}
    for argv in ([], ['relative/path'], [''], 'true', [1]):
        reply = ask(command_runner, (json.dumps({'argv': argv}) + '\n').encode())
        assert reply['error'].startswith('argv: '), argv
    # Still serving after them.
    assert ask(command_runner, b'{"argv": ["/bin/sh", "-c", "exit 4"]}\n') == {'exit': 4}


def test_every_command_check_goes_to_the_configured_runner():
    config = validate_config({'command_runner_socket': '/run/x/runner.sock', 'prefixes': [
        {'prefix': '10.250.0.10/32', 'checks': [{'type': 'command', 'argv': ['/bin/true']}, {'type': 'tcp', 'host': '127.0.0.1', 'port': 80}]}]})
    command, tcp = config['prefixes'][0]['checks']
    assert command['runner_socket'] == '/run/x/runner.sock' and 'runner_socket' not in tcp
