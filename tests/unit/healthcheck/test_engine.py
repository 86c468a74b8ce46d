"""The probe engine and the shared round timers, against real local sockets (no stand-ins)."""

import asyncio
import socket
import threading
import time

import pytest

from conftest import serve_http


def http_server(answer, delay=0.0, split=None):
    """A listener that answers every connection with `answer` (after `delay`, optionally in two parts)."""
    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(128)
    threading.Thread(target=serve_http, args=(listener, answer, delay, split), daemon=True).start()
    return listener


def closed_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def http(hc, port, **extra):
    return hc.validate_check(dict({'type': 'http', 'url': 'http://127.0.0.1:%d/health' % port}, **extra), 'check')


def run_probes(hc, checks, timeout=1.0):
    """Start every check in one tick on one engine; return their results in order."""
    async def main():
        engine = hc.probe_engine()
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


def test_many_probes_in_one_tick_share_timers_and_all_answer(hc):
    ok = http_server(b'HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n')
    port = ok.getsockname()[1]
    checks = [http(hc, port) for _index in range(40)] + [hc.validate_check({'type': 'tcp', 'host': '127.0.0.1', 'port': port}, 'check')]
    results, shared_timers = run_probes(hc, checks)
    assert all(r['ok'] for r in results), results
    assert results[0]['detail'] == 'status 200' and results[-1]['detail'] == 'connected'
    # Deadlines are quantized, so probes started together need one or two timers, not 41.
    assert shared_timers <= 2
    ok.close()


def test_failures_are_reported_with_their_reason(hc):
    refused = closed_port()
    hung = socket.socket()  # accepts (kernel backlog) but never answers
    hung.bind(('127.0.0.1', 0))
    hung.listen(16)
    garbage = http_server(b'SSH-2.0-OpenSSH\r\n')
    wrong = http_server(b'HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n')
    checks = [http(hc, refused), http(hc, hung.getsockname()[1]), http(hc, garbage.getsockname()[1]), http(hc, wrong.getsockname()[1]),
              hc.validate_check({'type': 'tcp', 'host': '127.0.0.1', 'port': refused}, 'check')]
    started = time.monotonic()
    results, _timers = run_probes(hc, checks, timeout=0.3)
    assert time.monotonic() - started < 1.0
    assert [r['ok'] for r in results] == [False] * 5
    assert '[Errno 111]' in results[0]['detail'] and '[Errno 111]' in results[4]['detail']
    assert results[1]['detail'] == 'timeout after 0.3s' and results[1]['seconds'] >= 0.3
    assert results[2]['detail'] == 'not an HTTP response'
    assert results[3]['detail'] == 'status 503, expected [200]'
    for sock in (hung, garbage, wrong):
        sock.close()


def test_body_checks_read_an_answer_that_arrives_in_pieces(hc):
    answer = b'HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nhealthy\n'
    slow = http_server(answer, split=20)
    port = slow.getsockname()[1]
    results, _timers = run_probes(hc, [http(hc, port, body_match='healthy'), http(hc, port, body_regex='^heal'),
                                       http(hc, port, body_match='ready')])
    assert [r['ok'] for r in results] == [True, True, False]
    assert 'does not contain' in results[2]['detail']
    slow.close()


def test_a_cancelled_probe_reports_nothing_and_closes_its_socket(hc):
    hung = socket.socket()
    hung.bind(('127.0.0.1', 0))
    hung.listen(16)

    async def main():
        engine = hc.probe_engine()
        seen = []
        probe = engine.start(http(hc, hung.getsockname()[1]), 0.2, seen.append)
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
def test_next_round_keeps_regular_rounds_on_a_grid(hc, last, delay, expected):
    assert hc.next_round(last, delay, 0.4) == pytest.approx(expected)


def test_next_round_is_identical_for_groups_on_the_same_grid(hc):
    # Exactly equal floats: that is what lets the ticker put them on one timer.
    assert hc.next_round(12.0, 0.4, 0.4) == hc.next_round(12.0 + 1e-9, 0.4, 0.4)


def test_ticker_wakes_runners_due_together_on_one_timer(hc):
    class Runner:
        def __init__(self):
            self.launched = []

        def launch(self, when):
            self.launched.append(when)

    async def main():
        loop = asyncio.get_running_loop()
        ticker = hc.Ticker()
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
