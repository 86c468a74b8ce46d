# Copyright: anycast.nva contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The checker's two endpoints: the control socket (drain, undrain, status) and the metrics endpoint.

Both are bounded so that no client can take what the probes need: a client has REQUEST_DEADLINE seconds for its
whole request, lines of at most MAX_LINE bytes and MAX_HEADER_LINES header lines, and at most MAX_CLIENTS of an
endpoint are served at once (any more are closed as they arrive). Idle or slow clients therefore hold a bounded
number of file descriptors, and the probes keep the rest. The metrics endpoint is optional: a port in use at start
leaves the checker running without it (logged, in `status`, retried), never withdrawing anything for it.
"""

import asyncio
import json
import os

from .config import parse_listen
from .util import log

MAX_LINE = 8192
MAX_HEADER_LINES = 64
REQUEST_DEADLINE = 2.0
MAX_CLIENTS = {'control': 8, 'metrics': 16}
RETRY_BIND = 10.0  # seconds between two tries of a metrics address that was in use


class RequestError(ValueError):
    """A request that is too slow, too long or malformed."""


async def _read_line(reader, deadline):
    loop = asyncio.get_running_loop()
    try:
        return await asyncio.wait_for(reader.readline(), max(0.0, deadline - loop.time()))
    except asyncio.TimeoutError:
        raise RequestError('request not complete within %.0f s' % REQUEST_DEADLINE) from None
    except ValueError:  # asyncio's LimitOverrunError: a line longer than the reader's limit
        raise RequestError('request line longer than %d bytes' % MAX_LINE) from None


async def read_http_request(reader):
    """The request line of an HTTP request whose headers are read (and ignored) within the bounds."""
    deadline = asyncio.get_running_loop().time() + REQUEST_DEADLINE
    request = await _read_line(reader, deadline)
    for _count in range(MAX_HEADER_LINES + 1):
        if await _read_line(reader, deadline) in (b'\r\n', b'\n', b''):
            return request
    raise RequestError('more than %d header lines' % MAX_HEADER_LINES)


async def read_control_request(reader):
    """One JSON object on one line."""
    line = await _read_line(reader, asyncio.get_running_loop().time() + REQUEST_DEADLINE)
    try:
        request = json.loads(line.decode('utf-8') or '{}')
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestError('a request is one line of JSON: %s' % exc) from None
    if not isinstance(request, dict):
        raise RequestError('a request is a JSON object, got %s' % type(request).__name__)
    return request


class Endpoints:
    """Starts, restarts and bounds the control socket and the metrics endpoint.

    handlers: {'control': coroutine(reader, writer), 'metrics': coroutine(reader, writer)}.
    """

    def __init__(self, handlers):
        self.handlers = handlers
        self.servers = {}  # kind -> (setting, server)
        self.clients = {kind: 0 for kind in handlers}
        self.unavailable = {}  # kind -> (setting, error) of an endpoint that could not be started
        self._retry = None

    def state(self):
        """For `status`: where each endpoint listens, or why it does not."""
        out = {kind: {'listen': setting} for kind, (setting, _server) in self.servers.items()}
        out.update((kind, {'listen': setting, 'unavailable': error}) for kind, (setting, error) in self.unavailable.items())
        return out

    def _bounded(self, kind):
        handler = self.handlers[kind]

        async def serve(reader, writer):
            if self.clients[kind] >= MAX_CLIENTS[kind]:
                writer.close()
                return
            self.clients[kind] += 1
            try:
                await handler(reader, writer)
            finally:
                self.clients[kind] -= 1
                writer.close()
        return serve

    async def apply(self, settings):
        """(Re)start each endpoint whose setting changed; settings: {kind: path or IP:PORT or empty}."""
        for kind, setting in settings.items():
            current = self.servers.get(kind)
            if current and current[0] == setting:
                continue
            if current:
                current[1].close()
                del self.servers[kind]
            self.unavailable.pop(kind, None)
            if not setting:
                continue
            try:
                self.servers[kind] = (setting, await self._start(kind, setting))
            except OSError as exc:
                if kind == 'control':
                    raise  # drain and status need it: the unit's restart is the right answer
                self.unavailable[kind] = (setting, str(exc))
                log('endpoint_unavailable', endpoint=kind, listen=setting, error=str(exc), retry_seconds=RETRY_BIND)
        if self.unavailable and (self._retry is None or self._retry.done()):
            self._retry = asyncio.ensure_future(self._retry_later(settings))

    async def _retry_later(self, settings):
        await asyncio.sleep(RETRY_BIND)
        self._retry = None  # apply() below schedules the next try if this one fails too
        wanted = {kind: setting for kind, (setting, _error) in self.unavailable.items() if settings.get(kind) == setting}
        for kind in wanted:
            self.unavailable.pop(kind)
        await self.apply(wanted)
        for kind in wanted:
            if kind in self.servers:
                log('endpoint_started', endpoint=kind, listen=wanted[kind])

    async def _start(self, kind, setting):
        if kind == 'control':
            if os.path.exists(setting):
                os.unlink(setting)  # stale socket of a killed predecessor
            old_umask = os.umask(0o077)  # only root and our own user may drain
            try:
                return await asyncio.start_unix_server(self._bounded(kind), path=setting, limit=MAX_LINE)
            finally:
                os.umask(old_umask)
        host, port = parse_listen(setting)
        # asyncio accepts up to `backlog` connections per turn of the loop before any is served (and closed if over
        # the cap): a small backlog keeps that burst small too.
        return await asyncio.start_server(self._bounded(kind), host, port, limit=MAX_LINE, backlog=MAX_CLIENTS[kind])

    def close(self):
        if self._retry is not None:
            self._retry.cancel()
        for _setting, server in self.servers.values():
            server.close()
        self.servers = {}
