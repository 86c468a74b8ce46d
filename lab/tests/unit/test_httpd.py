"""The lab's application backend keeps connections alive like an application server, and a stop closes them."""
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from anycast_lab.paths import LAB_DIR


@pytest.fixture(name="backend")
def fixture_backend(tmp_path):
    """A running httpd on a free loopback port with a 1 s idle timeout: (process, port)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ready = tmp_path / "ready"
    proc = subprocess.Popen([sys.executable, "-m", "anycast_lab.hosts.httpd", "--bind", "127.0.0.1", "--port", str(port),
                             "--body", "hi\n", "--idle-timeout", "1", "--ready-file", str(ready)],
                            env=dict(os.environ, PYTHONPATH=LAB_DIR), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not ready.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "httpd did not come up"
            time.sleep(0.02)
        yield proc, port
    finally:
        proc.kill()
        proc.wait()


def exchange(sock, request):
    """Send one request and read its answer by Content-Length: (head, body)."""
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    head, _sep, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")))
    while len(body) < length and not request.startswith(b"HEAD"):
        body += sock.recv(4096)
    return head.decode(), body


def closed(sock, within):
    """True when the server closes the connection (EOF or reset) within `within` seconds."""
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except ConnectionError:
        return True
    except socket.timeout:
        return False


def test_http11_connection_is_kept_for_many_requests(backend):
    _proc, port = backend
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for path in ("/health", "/", "/other"):
            head, body = exchange(sock, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert head.startswith("HTTP/1.1 200 ") and "Content-Length: 3" in head and "Connection: close" not in head
            assert body == b"hi\n"
        head, body = exchange(sock, b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert head.startswith("HTTP/1.1 200 ") and body == b""
        assert not closed(sock, 0.3)


@pytest.mark.parametrize("request_bytes", [b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", b"GET / HTTP/1.0\r\n\r\n"],
                         ids=["connection-close", "http10"])
def test_closes_when_asked_or_http10(backend, request_bytes):
    _proc, port = backend
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        head, body = exchange(sock, request_bytes)
        assert "Connection: close" in head and body == b"hi\n"
        assert closed(sock, 2)


def test_idle_connection_closed_after_the_idle_timeout(backend):
    _proc, port = backend
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        exchange(sock, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        started = time.monotonic()
        assert closed(sock, 5)
        assert 0.8 < time.monotonic() - started < 3


def test_stop_closes_kept_connections_at_once(backend):
    proc, port = backend
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        exchange(sock, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        stopped = time.monotonic()
        proc.send_signal(signal.SIGTERM)  # what `service stop` sends
        assert closed(sock, 2)
        assert time.monotonic() - stopped < 0.5
    proc.wait(5)
