"""Probes on a fresh connection beside the kept one (fresh_interval): new connections failing alone are withdrawn."""

import socket
import time

import pytest

from test_daemon import changes, keepalive_daemon, stop_daemon, value, wait_value

TIMING = {'interval': 0.1, 'fast_interval': 0.02, 'timeout': 0.1, 'rise': 2, 'fall': 3}


def refuse_new_connections(listener):
    """The listener goes (new connections refused) while the established ones are still served."""
    listener.shutdown(socket.SHUT_RDWR)
    listener.close()


def test_a_fresh_connection_at_least_every_fresh_interval(tmp_path, daemon_path):
    ctx, _listener, record = keepalive_daemon(tmp_path, daemon_path, fresh_interval=0.5, **TIMING)
    try:
        conns, requests = len(record['conns']), len(record['requests'])
        time.sleep(2.0)
        fresh, probes = len(record['conns']) - conns, len(record['requests']) - requests
        # 2 s at one round per 0.1 s: about 20 probes, at least one fresh per 0.5 s, the others on the kept connection.
        assert 4 <= fresh <= 6, fresh
        assert probes >= 15 and probes - fresh >= 10, (probes, fresh)
    finally:
        stop_daemon(ctx)


@pytest.mark.parametrize('fresh_interval', [0.5, 0])
def test_new_connections_refused_while_the_kept_one_works(tmp_path, daemon_path, fresh_interval):
    ctx, listener, record = keepalive_daemon(tmp_path, daemon_path, fresh_interval=fresh_interval, **TIMING)
    try:
        refuse_new_connections(listener)
        refused = time.monotonic()
        if not fresh_interval:
            time.sleep(1.5)
            assert value(ctx) == 1, 'the kept connection alone hides the failure (what fresh_interval is for)'
            assert len(record['requests']) > 10
            return
        withdrawn = wait_value(ctx, 0, timeout=3)
        # The bound (README): fresh_interval + 2 x timeout + (fall - 1) x fast_interval; refused connections fail at once.
        bound = fresh_interval + 2 * TIMING['timeout'] + (TIMING['fall'] - 1) * TIMING['fast_interval']
        print('new connections refused -> withdrawn after %.3f s (bound %.2f s)' % (withdrawn - refused, bound))
        assert withdrawn - refused <= bound + 0.05
        assert changes(ctx)[-1]['reason'] == 'fall'
        assert 'refused' in changes(ctx)[-1]['checks'][0]['detail'].lower()
    finally:
        stop_daemon(ctx)
