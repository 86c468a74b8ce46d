# Copyright: anycast.nva contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The probe engine: plain TCP and HTTP probes without tasks or futures."""

import _socket
import asyncio
import errno
import math
import os
import select
import socket
import urllib.parse
import weakref

from .httpproto import MAX_BODY, http_answer, http_request, http_verdict, needs_body

# At 50 prefixes x 2.5 probes/s the cost that matters is per probe: asyncio's sock_* calls
# take a future, a handle and two epoll_ctl per wait. Here a probe is a small state machine
# on a socket registered once, edge-triggered, in an epoll of our own that the asyncio loop
# watches as a single reader; probes started together share epoll_wait calls and one timeout
# timer. HTTPS and command checks run as the coroutines of probes.py.
#
# HTTP checks keep their connection between rounds when the server allows it (HTTP/1.1, no
# `Connection: close`, a framed body): connect and close per probe were half of what the
# daemon cost. While idle the connection stays in the epoll, so a server that closes or
# resets it (the application stopped) is seen at once and the check probes early.
GATHER = 0.002  # seconds the engine lets readiness events pile up (adds at most that to a probe)
_EP_OUT = getattr(select, 'EPOLLOUT', 4)
_EP_IN = getattr(select, 'EPOLLIN', 1) | getattr(select, 'EPOLLRDHUP', 0x2000)
_EP_ERR = getattr(select, 'EPOLLERR', 8) | getattr(select, 'EPOLLHUP', 16)
_EP_FLAGS = _EP_IN | _EP_OUT | getattr(select, 'EPOLLET', 1 << 31)


def fast_capable(check):
    """True for the checks the engine runs (tcp, plain http); the others run as coroutines."""
    return hasattr(select, 'epoll') and (check['type'] == 'tcp' or (check['type'] == 'http' and check['url'].startswith('http:')))


def keeps_connection(check):
    """True for the checks that keep their connection between probes (plain HTTP unless keepalive: false)."""
    return fast_capable(check) and check['type'] == 'http' and check['keepalive']


_PLANS = {}


def _http_plan(check, keep):
    """(address, request bytes, need_body) of a plain HTTP check, computed once per URL."""
    key = (check['url'], needs_body(check), keep)
    plan = _PLANS.get(key)
    if plan is None:
        parts = urllib.parse.urlsplit(check['url'])
        plan = _PLANS[key] = ((parts.hostname, parts.port or 80), http_request(check, keep), key[1])
    return plan


class KeptConnection:
    """The idle connection of one HTTP check between its probes, watched in the engine's epoll.

    Anything readable on an idle connection (EOF, a reset, unasked data) ends it, and
    `on_close` is told: the application may have stopped.
    """

    __slots__ = ('engine', 'sock', 'fd', 'on_close')

    def __init__(self, on_close=None):
        self.on_close = on_close
        self.engine = self.sock = self.fd = None

    def take(self):
        """The idle socket for a probe (or None); it stays registered in the epoll."""
        sock, self.sock = self.sock, None
        if sock is not None:
            self.engine.idle.pop(self.fd, None)
        return sock

    def put(self, engine, sock, fd):
        """Keep a probe's socket; False when one is kept already (overlapping rounds)."""
        if self.sock is not None:
            return False
        self.engine, self.sock, self.fd = engine, sock, fd
        engine.idle[fd] = self
        return True

    def event(self, mask):
        """Readiness of the idle socket: EOF, a reset or data end it; writable alone means nothing."""
        if not mask & (_EP_IN | _EP_ERR):
            return
        try:
            self.sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return  # a late edge of the answer already read
        except OSError:
            pass
        self.close()
        if self.on_close is not None:
            self.on_close()

    def close(self):
        """Close the idle connection, if any."""
        sock = self.take()
        if sock is not None:
            sock.close()


class _Probe:
    """One probe in flight: connect (or reuse a kept connection), send the request, read the answer, judge, report once."""

    __slots__ = ('engine', 'check', 'sock', 'fd', 'started', 'done', 'request', 'data', 'need_body', 'connected',
                 'address', 'kept', 'reused')

    def __init__(self, engine, check, done, kept):
        self.engine, self.check, self.done, self.kept = engine, check, done, kept
        self.sock = self.fd = self.request = None
        self.data = b''
        self.need_body = self.connected = self.reused = False
        self.started = engine.loop.time()
        if check['type'] == 'tcp':
            self.address = (check['host'], check['port'])
        else:
            self.address, self.request, self.need_body = _http_plan(check, kept is not None)

    def begin(self):
        sock = self.kept.take() if self.kept is not None else None
        if sock is None:
            self.connect()
            return
        self.sock, self.fd, self.connected, self.reused = sock, sock.fileno(), True, True
        self.engine.live[self.fd] = self
        self.event(_EP_OUT)  # connected and idle: send at once

    def connect(self):
        address = self.address
        try:
            # The C socket type: socket.socket's Python layer (__init__, close) was a tenth of the daemon's CPU.
            sock = self.sock = _socket.socket(socket.AF_INET6 if ':' in address[0] else socket.AF_INET,
                                              socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
            self.fd = sock.fileno()
            err = sock.connect_ex(address)
            if err not in (0, errno.EINPROGRESS):
                raise OSError(err, 'Connect call failed %s' % (address,))
            self.engine.epoll.register(self.fd, _EP_FLAGS)
        except OSError as exc:
            self.finish(False, str(exc) or type(exc).__name__)
            return
        self.engine.live[self.fd] = self

    def event(self, mask):
        try:
            if not self.connected:
                if mask & _EP_ERR:  # only then ask why (one syscall less per probe)
                    err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise OSError(err, os.strerror(err))
                if not mask & _EP_OUT:
                    return
                self.connected = True
                if self.request is None:
                    self.finish(True, 'connected')
                    return
            if self.request:
                sent = self.sock.send(self.request)
                self.request = self.request[sent:]
                if self.request:
                    return  # the rest when the socket is writable again (next edge)
                if not mask & _EP_IN:
                    return
            if self.request is not None:
                self.read()
        except BlockingIOError:
            pass
        except OSError as exc:
            self.lost(exc)

    def read(self):
        # Edge-triggered: read until the socket is empty, the answer is enough, or EOF.
        keep = self.kept is not None
        while True:
            chunk = self.sock.recv(MAX_BODY)
            if not chunk and not self.data:
                self.lost(None)
                return
            self.data += chunk
            try:
                answer = http_answer(self.data, not chunk, self.need_body, keep)
                if answer is None:
                    continue
                detail = http_verdict(self.check, answer[0])
            except (ValueError, UnicodeError) as exc:
                self.finish(False, str(exc) or type(exc).__name__)
                return
            self.finish(True, detail, answer[1])
            return

    def lost(self, exc):
        """The connection failed (exc) or ended (None) before an answer was complete."""
        if self.reused and not self.data and (exc is None or isinstance(exc, ConnectionError)):
            # The server closed the kept connection while idle, a race not a failure: once more on a new one.
            self.engine.live.pop(self.fd, None)
            self.sock.close()
            self.reused = self.connected = False
            self.request = _http_plan(self.check, True)[1]  # the send consumed it: whole again
            self.connect()
            return
        self.finish(False, 'connection closed before an answer' if exc is None else str(exc) or type(exc).__name__)

    def finish(self, ok, detail, reusable=False):
        sock = self.sock
        if sock is not None:
            self.engine.live.pop(self.fd, None)
            self.sock = None
            if not (reusable and self.kept.put(self.engine, sock, self.fd)):
                sock.close()  # also leaves the epoll set
        done, self.done = self.done, None
        if done is not None:
            done({'name': self.check['name'], 'ok': ok, 'detail': detail,
                  'seconds': round(self.engine.loop.time() - self.started, 6)})

    def cancel(self):
        """Drop the probe without a result (its round was stopped)."""
        self.done = None
        self.finish(False, 'cancelled')


class ProbeEngine:
    """Runs fast probes of one event loop; probes started in one tick share one timeout timer."""

    def __init__(self, loop):
        self.loop = loop
        self.epoll = select.epoll()
        self.live = {}  # fd -> probe in flight
        self.idle = {}  # fd -> KeptConnection
        self.batches = {}  # deadline -> [probes]
        self.resting = None  # the timer handle while the engine gathers events
        loop.add_reader(self.epoll.fileno(), self._ready)

    def start(self, check, timeout, done, kept=None):
        """Start one probe; `done(result)` is called exactly once unless the probe is cancelled.

        `kept`: the check's KeptConnection, for an HTTP check that keeps its connection.
        """
        probe = _Probe(self, check, done, kept)
        probe.begin()
        if probe.sock is not None:
            # Quantized (5 ms, never early) so that probes started together share one timer.
            deadline = math.ceil((probe.started + timeout) * 200) / 200
            batch = self.batches.get(deadline)
            if batch is None:
                batch = self.batches[deadline] = []
                self.loop.call_at(deadline, self._expire, deadline, timeout)
            batch.append(probe)
        return probe

    def _ready(self):
        self._dispatch()
        if self.live:
            # More answers are on their way: look again in GATHER seconds rather than wake
            # up for each one (a few wakeups per round of 50 probes instead of one per answer).
            self.loop.remove_reader(self.epoll.fileno())
            self.resting = self.loop.call_later(GATHER, self._wake)

    def _wake(self):
        if self._dispatch() and self.live:
            self.resting = self.loop.call_later(GATHER, self._wake)
        else:
            # Quiet (or nothing left): sleep on readiness again, so a hung target costs nothing.
            self.resting = None
            self.loop.add_reader(self.epoll.fileno(), self._ready)

    def _dispatch(self):
        events = self.epoll.poll(0, 256)
        live, idle = self.live, self.idle
        for fd, mask in events:
            target = live.get(fd) or idle.get(fd)
            if target is not None:
                target.event(mask)
        return events

    def _expire(self, deadline, timeout):
        for probe in self.batches.pop(deadline, ()):
            if probe.sock is not None:
                probe.finish(False, 'timeout after %ss' % timeout)

    def close(self):
        """Stop watching (tests and loop shutdown)."""
        for probe in list(self.live.values()):
            probe.cancel()
        for kept in list(self.idle.values()):
            kept.close()
        if self.resting:
            self.resting.cancel()
        else:
            self.loop.remove_reader(self.epoll.fileno())
        self.epoll.close()


_ENGINES = weakref.WeakKeyDictionary()


def probe_engine():
    """The engine of the running loop (one per loop)."""
    loop = asyncio.get_running_loop()
    engine = _ENGINES.get(loop)
    if engine is None:
        engine = _ENGINES[loop] = ProbeEngine(loop)
    return engine
