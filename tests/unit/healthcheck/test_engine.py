"""The probe engine and the shared round timers, against real local sockets (no stand-ins)."""

import asyncio
import socket
import threading
import time

import pytest

import anycast_healthcheck.engine
import anycast_healthcheck.httpproto
from anycast_healthcheck.config import validate_check
from anycast_healthcheck.engine import keeps_connection, KeptConnection, probe_engine
from anycast_healthcheck.httpproto import http_request
from anycast_healthcheck.scheduler import next_round, Ticker
from conftest import serve_http


def http_server(answer, delay=0.0, split=None, idle_timeout=None, record=None):
    """A listener that answers every connection with `answer` (after `delay`, optionally in two parts; see serve_http)."""
    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(128)
    threading.Thread(target=serve_http, args=(listener, answer, delay, split, idle_timeout, record), daemon=True).start()
    return listener


def closed_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def http(port, **extra):
    return validate_check(dict({'type': 'http', 'url': 'http://127.0.0.1:%d/health' % port}, **extra), 'check')


def run_probes(checks, timeout=1.0):
    """Start every check in one tick on one engine; return their results in order."""
    async def main():
        engine = probe_engine()
        results = [None] * len(checks)
        done = asyncio.Event()

        def callback(i):
            def store(result):
                results[i] = result
                if all(r is not None for r in results):
                    done.set()
            return store
        for i, check in enumerate(checks):
            engine.start(check, timeout, callback(i))
        shared_timers = len(engine.batches)
        await asyncio.wait_for(done.wait(), timeout + 2)
        assert not engine.live  # every socket closed
        engine.close()
        return results, shared_timers
    return asyncio.run(main())


def test_many_probes_in_one_tick_share_timers_and_all_answer():
    ok = http_server(b'HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n')
    port = ok.getsockname()[1]
    checks = [http(port) for _index in range(40)] + [validate_check({'type': 'tcp', 'host': '127.0.0.1', 'port': port}, 'check')]
    results, shared_timers = run_probes(checks)
    assert all(r['ok'] for r in results), results
    assert results[0]['detail'] == 'status 200' and results[-1]['detail'] == 'connected'
    # Deadlines are quantized, so probes started together need one or two timers, not 41.
    assert shared_timers <= 2
    ok.close()


def test_failures_are_reported_with_their_reason():
    refused = closed_port()
    hung = socket.socket()  # accepts (kernel backlog) but never answers
    hung.bind(('127.0.0.1', 0))
    hung.listen(16)
    garbage = http_server(b'SSH-2.0-OpenSSH\r\n')
    wrong = http_server(b'HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n')
    checks = [http(refused), http(hung.getsockname()[1]), http(garbage.getsockname()[1]), http(wrong.getsockname()[1]),
              validate_check({'type': 'tcp', 'host': '127.0.0.1', 'port': refused}, 'check')]
    started = time.monotonic()
    results, _timers = run_probes(checks, timeout=0.3)
    assert time.monotonic() - started < 1.0
    assert [r['ok'] for r in results] == [False] * 5
    assert '[Errno 111]' in results[0]['detail'] and '[Errno 111]' in results[4]['detail']
    assert results[1]['detail'] == 'timeout after 0.3s' and results[1]['seconds'] >= 0.3
    assert results[2]['detail'] == 'not an HTTP response'
    assert results[3]['detail'] == 'status 503, expected [200]'
    for sock in (hung, garbage, wrong):
        sock.close()


def test_body_checks_read_an_answer_that_arrives_in_pieces():
    answer = b'HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nhealthy\n'
    slow = http_server(answer, split=20)
    port = slow.getsockname()[1]
    results, _timers = run_probes([http(port, body_match='healthy'), http(port, body_regex='^heal'),
                                   http(port, body_match='ready')])
    assert [r['ok'] for r in results] == [True, True, False]
    assert 'does not contain' in results[2]['detail']
    slow.close()


def test_a_cancelled_probe_reports_nothing_and_closes_its_socket():
    hung = socket.socket()
    hung.bind(('127.0.0.1', 0))
    hung.listen(16)

    async def main():
        engine = probe_engine()
        seen = []
        probe = engine.start(http(hung.getsockname()[1]), 0.2, seen.append)
        await asyncio.sleep(0.05)
        probe.cancel()
        await asyncio.sleep(0.3)  # past the timeout: the expired timer must not report either
        assert seen == [] and not engine.live
        engine.close()
    asyncio.run(main())
    hung.close()


@pytest.mark.parametrize('last, delay, expected', [
    (0.4, 0.4, 0.8),       # on the grid: one interval later
    (0.41, 0.4, 0.8),      # off the grid (first round at start): back onto it
    (0.0, 0.4, 0.4),       # never the same instant again
    (1.0, 0.03, 1.03),     # fast confirmations are not aligned
])
def test_next_round_keeps_regular_rounds_on_a_grid(last, delay, expected):
    assert next_round(last, delay, 0.4) == pytest.approx(expected)


def test_next_round_is_identical_for_groups_on_the_same_grid():
    # Exactly equal floats: that is what lets the ticker put them on one timer.
    assert next_round(12.0, 0.4, 0.4) == next_round(12.0 + 1e-9, 0.4, 0.4)


def test_ticker_wakes_runners_due_together_on_one_timer():
    class Runner:
        def __init__(self):
            self.launched = []

        def launch(self, when):
            self.launched.append(when)

    async def main():
        loop = asyncio.get_running_loop()
        ticker = Ticker()
        runners = [Runner() for _index in range(3)]
        when = loop.time() + 0.02
        before = len(loop._scheduled)  # pylint: disable=protected-access  # counting timers is the point
        for runner in runners:
            ticker.add(runner, when)
        assert len(loop._scheduled) == before + 1  # pylint: disable=protected-access
        ticker.remove(runners[2], when)
        await asyncio.sleep(0.05)
        return runners
    runners = asyncio.run(main())
    assert runners[0].launched == runners[1].launched and len(runners[0].launched) == 1
    assert runners[2].launched == []


KEEPALIVE_ANSWERS = {
    'content-length': b'HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nhealthy\n',
    'chunked': b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nheal\r\n4;x=y\r\nthy\n\r\n0\r\n\r\n',
    'no content': b'HTTP/1.1 204 No Content\r\n\r\n',
}


def probe_in_turn(check, count, kept, between=None, timeout=1.0):
    """Run `count` probes of one check one after the other on one engine with `kept`; return their results.

    `between()` runs after each probe without giving the loop a turn (the engine sees nothing meanwhile).
    """
    async def main():
        engine = probe_engine()
        results = []
        for _index in range(count):
            future = asyncio.get_running_loop().create_future()
            engine.start(check, timeout, future.set_result, kept)
            results.append(await future)
            if between:
                between()
        await asyncio.sleep(0.05)
        engine.close()
        return results
    return asyncio.run(main())


@pytest.mark.parametrize('framing', sorted(KEEPALIVE_ANSWERS))
def test_a_kept_connection_serves_every_probe(framing):
    record = {}
    server = http_server(KEEPALIVE_ANSWERS[framing], idle_timeout=5, record=record)
    kept = KeptConnection()
    status = 204 if framing == 'no content' else 200
    check = http(server.getsockname()[1], expect_status=status, **({} if status == 204 else {'body_match': 'healthy'}))
    results = probe_in_turn(check, 5, kept)
    assert [r['ok'] for r in results] == [True] * 5, results
    assert len(record['conns']) == 1 and len(record['requests']) == 5
    server.close()


def test_a_failed_probe_does_not_keep_its_connection():
    record = {}
    server = http_server(b'HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\n\r\ndown\n', idle_timeout=5, record=record)
    kept = KeptConnection()
    results = probe_in_turn(http(server.getsockname()[1]), 2, kept)
    assert [r['detail'] for r in results] == ['status 503, expected [200]'] * 2
    assert len(record['conns']) == 2 and kept.sock is None
    server.close()


@pytest.mark.parametrize('answer', [
    b'HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 8\r\n\r\nhealthy\n',
    b'HTTP/1.0 200 OK\r\nContent-Length: 8\r\n\r\nhealthy\n',
    b'HTTP/1.1 200 OK\r\n\r\nhealthy\n',  # no framing: the body ends with the connection
])
def test_an_answer_that_ends_the_connection_still_passes(answer):
    record = {}
    server = http_server(answer, record=record)
    kept = KeptConnection()
    check = http(server.getsockname()[1], body_match='healthy')
    results = probe_in_turn(check, 3, kept)
    assert [r['ok'] for r in results] == [True] * 3, results
    assert len(record['conns']) == 3 and kept.sock is None
    server.close()


def test_keepalive_false_asks_the_server_to_close():
    record = {}
    server = http_server(KEEPALIVE_ANSWERS['content-length'], idle_timeout=5, record=record)
    check = http(server.getsockname()[1], keepalive=False)
    assert not keeps_connection(check)
    assert b'Connection: close' in anycast_healthcheck.engine._http_plan(check, False)[1]  # pylint: disable=protected-access
    server.close()


def test_one_request_builder_for_every_http_check():
    plain = validate_check({'type': 'http', 'url': 'http://10.11.1.4:8080/health?full=1'}, 'check')
    tls = validate_check({'type': 'http', 'url': 'https://10.11.1.4/health', 'server_name': 'app.internal'}, 'check')
    assert http_request(plain) == (b'GET /health?full=1 HTTP/1.1\r\nHost: 10.11.1.4:8080\r\nUser-Agent: anycast-healthcheck\r\n'
                                   b'Connection: close\r\n\r\n')
    assert http_request(plain, keep=True) == http_request(plain).replace(b'Connection: close\r\n', b'')
    assert http_request(tls).startswith(b'GET /health HTTP/1.1\r\nHost: app.internal\r\n')
    # The engine sends what the builder makes.
    assert anycast_healthcheck.engine._http_plan(plain, True)[1] == http_request(plain, keep=True)  # pylint: disable=protected-access


def test_a_kept_connection_the_server_closed_is_retried_once_on_a_new_one():
    # The server closes the idle connection just before the next probe: the loop has no turn
    # in between, so the probe sends on the dead connection, meets EOF or a reset, reconnects.
    record = {}
    server = http_server(KEEPALIVE_ANSWERS['content-length'], idle_timeout=5, record=record)
    closes = []
    kept = KeptConnection(lambda: closes.append(1))

    def server_closes():
        record['conns'][-1].shutdown(socket.SHUT_RDWR)
        time.sleep(0.05)  # the FIN has arrived (the engine has not looked)
    results = probe_in_turn(http(server.getsockname()[1]), 3, kept, between=server_closes)
    assert [r['ok'] for r in results] == [True] * 3, results
    assert len(record['conns']) == 3 and closes == [1]  # only the last close was seen idle
    server.close()


def test_a_retry_happens_once_then_the_probe_fails():
    # The server answers on its first connection, then closes it and hangs up on every new one:
    # the probe on the kept connection retries once; the new connection's EOF is a failure.
    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(16)
    conns = []

    def answer_once_then_hang_up():
        first, _addr = listener.accept()
        conns.append(first)
        first.recv(4096)
        first.sendall(KEEPALIVE_ANSWERS['content-length'])
        while True:
            try:
                conn, _addr = listener.accept()
            except OSError:
                return
            conns.append(conn)
            conn.close()
    threading.Thread(target=answer_once_then_hang_up, daemon=True).start()

    def server_closes():
        conns[0].close()
        time.sleep(0.05)
    results = probe_in_turn(http(listener.getsockname()[1]), 2, KeptConnection(), between=server_closes)
    assert results[0]['ok'] and not results[1]['ok'], results
    assert results[1]['detail'] in ('connection closed before an answer', '[Errno 104] Connection reset by peer'), results
    assert len(conns) == 2
    listener.close()


def test_an_idle_connection_the_server_closes_is_reported_once():
    record = {}
    server = http_server(KEEPALIVE_ANSWERS['content-length'], idle_timeout=0.1, record=record)
    closes = []
    kept = KeptConnection(lambda: closes.append(time.monotonic()))

    async def main():
        engine = probe_engine()
        future = asyncio.get_running_loop().create_future()
        engine.start(http(server.getsockname()[1]), 1.0, future.set_result, kept)
        assert (await future)['ok'] and kept.sock is not None
        await asyncio.sleep(0.4)  # the server's idle timeout passes
        assert kept.sock is None and not engine.idle
        engine.close()
    asyncio.run(main())
    assert len(closes) == 1
    server.close()


@pytest.mark.parametrize('body, decoded', [
    (b'3\r\nabc\r\n0\r\n\r\n', (b'abc', b'')),
    (b'3\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n', (b'abc', b'')),
    (b'3\r\nabc\r\n0\r\n\r\nextra', (b'abc', b'extra')),
    (b'3\r\nabc\r\n0\r\n', None),
    (b'3\r\nab', None),
])
def test_dechunk(body, decoded):
    assert anycast_healthcheck.httpproto._dechunk(body) == decoded  # pylint: disable=protected-access
