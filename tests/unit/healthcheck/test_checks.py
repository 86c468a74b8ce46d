"""The probes against real local servers: HTTP status and body, HTTPS verification, TCP, command, timeout."""

import asyncio
import datetime
import http.server
import socket
import ssl
import threading
import time

import pytest

cryptography = pytest.importorskip('cryptography')
from cryptography import x509  # noqa: E402  pylint: disable=wrong-import-position
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402  pylint: disable=wrong-import-position
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402  pylint: disable=wrong-import-position
from cryptography.x509.oid import NameOID  # noqa: E402  pylint: disable=wrong-import-position
from anycast_healthcheck.config import validate_check  # noqa: E402  pylint: disable=wrong-import-position
from anycast_healthcheck.probes import run_check  # noqa: E402  pylint: disable=wrong-import-position


class Handler(http.server.BaseHTTPRequestHandler):
    """200 'healthy' on /health, 503 elsewhere."""

    def do_GET(self):  # pylint: disable=invalid-name
        body = b'healthy\n' if self.path == '/health' else b'down\n'
        self.send_response(200 if self.path == '/health' else 503)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # pylint: disable=arguments-differ
        pass


def self_signed(tmp_path, name):
    """A self-signed certificate for `name`; returns (cert path, key path)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / 'cert.pem', tmp_path / 'key.pem'
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_path, key_path


def serve(tls=None):
    """Start an HTTP(S) server on 127.0.0.1; return its port."""
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*tls)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


def check(spec, timeout=2.0):
    return asyncio.run(run_check(validate_check(spec, 'check'), timeout))


def test_http_status_and_body():
    port = serve()
    assert check({'type': 'http', 'url': 'http://127.0.0.1:%d/health' % port, 'body_match': 'healthy'})['ok']
    assert check({'type': 'http', 'url': 'http://127.0.0.1:%d/health' % port, 'body_regex': '^heal'})['ok']
    result = check({'type': 'http', 'url': 'http://127.0.0.1:%d/other' % port})
    assert not result['ok'] and result['detail'] == 'status 503, expected [200]'
    assert check({'type': 'http', 'url': 'http://127.0.0.1:%d/other' % port, 'expect_status': [200, 503]})['ok']
    result = check({'type': 'http', 'url': 'http://127.0.0.1:%d/health' % port, 'body_match': 'ready'})
    assert not result['ok'] and 'does not contain' in result['detail']


def test_https_verification(tmp_path):
    cert, key = self_signed(tmp_path, 'app.internal')
    port = serve((cert, key))
    url = 'https://127.0.0.1:%d/health' % port
    assert check({'type': 'http', 'url': url, 'ca_file': str(cert), 'server_name': 'app.internal', 'body_match': 'healthy'})['ok']
    assert check({'type': 'http', 'url': url, 'tls_verify': False})['ok']
    unknown_ca = check({'type': 'http', 'url': url})
    assert not unknown_ca['ok'] and 'CERTIFICATE_VERIFY_FAILED' in unknown_ca['detail']
    wrong_name = check({'type': 'http', 'url': url, 'ca_file': str(cert), 'server_name': 'other.internal'})
    assert not wrong_name['ok'] and 'CERTIFICATE_VERIFY_FAILED' in wrong_name['detail']


def test_tcp_connect_and_refused():
    with socket.socket() as listener:
        listener.bind(('127.0.0.1', 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        assert check({'type': 'tcp', 'host': '127.0.0.1', 'port': port})['ok']
    result = check({'type': 'tcp', 'host': '127.0.0.1', 'port': port})
    assert not result['ok'] and '[Errno 111]' in result['detail']  # connection refused


def command(argv, runner_socket, timeout=2.0):
    """Run a command check through the runner at runner_socket (validate_config adds that key)."""
    spec = dict(validate_check({'type': 'command', 'argv': argv}, 'check'), runner_socket=runner_socket)
    return asyncio.run(run_check(spec, timeout))


def test_command_exit_status_and_timeout(command_runner):
    assert command(['/bin/true'], command_runner)['ok']
    assert command(['/bin/sh', '-c', 'exit 3'], command_runner)['detail'] == 'exit status 3'
    slow = command(['/bin/sleep', '5'], command_runner, timeout=0.2)
    assert not slow['ok'] and slow['detail'] == 'timeout after 0.2s' and slow['seconds'] < 1.0


def test_a_command_that_forks_and_hangs_leaves_nothing_behind_its_timeout(tmp_path, command_runner):
    # The check forks a grandchild that records its pid and hangs, then hangs itself.
    pid_file = tmp_path / 'grandchild.pid'
    script = 'sleep 30 & echo $! > %s; sleep 30' % pid_file
    result = command(['/bin/sh', '-c', script], command_runner, timeout=0.3)
    assert not result['ok'] and result['detail'] == 'timeout after 0.3s'
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 2
    while running(grandchild):
        assert time.monotonic() < deadline, 'the grandchild %d outlived the timeout' % grandchild
        time.sleep(0.01)


def test_a_command_check_fails_closed_without_its_runner(tmp_path):
    result = command(['/bin/true'], str(tmp_path / 'absent.sock'))
    assert not result['ok'] and 'No such file' in result['detail']


def running(pid):
    """The process exists and is not a zombie."""
    try:
        with open('/proc/%d/status' % pid, encoding='utf-8') as status:
            return 'State:\tZ' not in status.read()
    except OSError:
        return False
