# Copyright: anycast.nva contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks as coroutines: HTTPS, command checks, and every check where the engine cannot run it."""

import asyncio
import socket
import urllib.parse

from .commands import run_remote
from .engine import fast_capable, probe_engine
from .httpproto import MAX_BODY, http_request, http_verdict, needs_body

_SSL = {}


def _ssl_context(check):
    """One TLS context per (verify, ca_file), created on first use."""
    key = (check['tls_verify'], check.get('ca_file'))
    if key not in _SSL:
        import ssl  # pylint: disable=import-outside-toplevel
        ctx = ssl.create_default_context(cafile=check.get('ca_file'))
        if not check['tls_verify']:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        _SSL[key] = ctx
    return _SSL[key]


async def _connect(host, port):
    # Raw non-blocking sockets: about a third of the CPU of asyncio streams per probe.
    sock = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
    except BaseException:
        sock.close()
        raise
    return sock


async def probe_tcp(check):
    """TCP connect succeeds."""
    (await _connect(check['host'], check['port'])).close()
    return 'connected'


async def _tls_exchange(sock, check, server_name, request, need_body):
    import ssl  # pylint: disable=import-outside-toplevel
    loop = asyncio.get_running_loop()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = _ssl_context(check).wrap_bio(incoming, outgoing, server_hostname=server_name)

    async def pump(operation, *args):
        while True:
            try:
                result = operation(*args)
            except ssl.SSLWantReadError:
                result = None
            pending = outgoing.read()
            if pending:
                await loop.sock_sendall(sock, pending)
            if result is not None:
                return result
            chunk = await loop.sock_recv(sock, MAX_BODY)
            if chunk:
                incoming.write(chunk)
            else:
                incoming.write_eof()

    await pump(lambda: tls.do_handshake() or True)
    await pump(tls.write, request)
    data = b''
    try:
        while len(data) < MAX_BODY and (need_body or b'\r\n' not in data):
            chunk = await pump(tls.read, MAX_BODY)
            if not chunk:
                break
            data += chunk
    except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
        pass  # the server closed the connection: we have what it sent
    return data


async def _http_exchange(check, parts, request, need_body):
    https = parts.scheme == 'https'
    loop = asyncio.get_running_loop()
    sock = await _connect(parts.hostname, parts.port or (443 if https else 80))
    try:
        if https:
            return await _tls_exchange(sock, check, check.get('server_name', parts.hostname), request, need_body)
        await loop.sock_sendall(sock, request)
        data = b''
        # Without a body check the status line is enough: stop reading there.
        while len(data) < MAX_BODY and (need_body or b'\r\n' not in data):
            chunk = await loop.sock_recv(sock, MAX_BODY)
            if not chunk:
                break
            data += chunk
        return data
    finally:
        sock.close()


async def probe_http(check):
    """HTTP(S) GET answers with an expected status (and body match, if asked)."""
    parts = urllib.parse.urlsplit(check['url'])
    return http_verdict(check, await _http_exchange(check, parts, http_request(check), needs_body(check)))


async def probe_command(check):
    """The command exits 0. The command runner runs it (commands.py), never the daemon itself."""
    code = await run_remote(check['runner_socket'], check['argv'])
    if code != 0:
        raise ValueError('exit status %d' % code)
    return 'exit status 0'


PROBES = {'tcp': probe_tcp, 'http': probe_http, 'command': probe_command}


async def run_check(check, timeout):
    """Run one check with its timeout; return a result dict (never raises)."""
    if not fast_capable(check):
        return await run_check_task(check, timeout)
    future = asyncio.get_running_loop().create_future()
    probe = probe_engine().start(check, timeout, future.set_result)
    try:
        return await future
    except asyncio.CancelledError:
        probe.cancel()
        raise


async def run_check_task(check, timeout):
    """Run one check as a coroutine with its timeout in the current task; return a result dict (never raises)."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    expired = []

    def expire():
        expired.append(True)
        task.cancel()
    # A timer that cancels this task is much cheaper than asyncio.wait_for's extra task.
    timer = loop.call_later(timeout, expire)
    start = loop.time()
    try:
        detail = await PROBES[check['type']](check)
        ok = True
    except asyncio.CancelledError:
        if not expired:
            raise  # the daemon is stopping: not a check result
        if hasattr(task, 'uncancel'):
            task.uncancel()
        ok, detail = False, 'timeout after %ss' % timeout
    except (OSError, ValueError, UnicodeError) as exc:
        ok, detail = False, str(exc) or type(exc).__name__
    finally:
        timer.cancel()
    return {'name': check['name'], 'ok': ok, 'detail': detail, 'seconds': round(loop.time() - start, 6)}
