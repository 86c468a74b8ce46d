# Copyright: anycast.nva contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Command checks, run by a separate runner under an identity of their own.

The daemon can write BIRD's include file and use BIRD's control socket. A command check is a
program somebody else wrote, so neither it nor anything it starts runs as the daemon: the
runner (`anycast-healthcheck run-commands`, its own unit and user) executes it on the daemon's
request over a Unix socket and answers with the exit status. The runner serves the daemon's user
only (SO_PEERCRED). Each command runs in a process group of its own; the daemon hanging up (the
check's timeout) kills the whole group, and so does the runner's own bound, MAX_SECONDS.
"""

import asyncio
import json
import os
import pwd
import signal
import socket
import struct

from .util import log

MAX_REQUEST = 65536
MAX_RUNNING = 32        # commands at once; more get an error reply (the check fails: fail closed)
MAX_SECONDS = 3600.0    # config.py's largest timeout; normally the daemon's hang-up ends a command first
REQUEST_DEADLINE = 2.0  # for the request line


async def run_command(argv, timeout, hangup=None):
    """Run argv in its own process group; return its exit status, or None when it was killed.

    It is killed, with everything it started, after `timeout` seconds or as soon as the
    awaitable `hangup` completes (the daemon gave up on it).
    """
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True)
    waiter = asyncio.ensure_future(proc.wait())
    stoppers = [asyncio.ensure_future(hangup)] if hangup is not None else []
    try:
        await asyncio.wait([waiter] + stoppers, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in stoppers:
            task.cancel()
        killed = not waiter.done()
        if killed:
            _kill_group(proc.pid)
        await waiter
    return None if killed else proc.returncode


def _kill_group(pgid):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def peer_uid(sock):
    """The user id of the process at the other end of a Unix socket."""
    _pid, uid, _gid = struct.unpack('3i', sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize('3i')))
    return uid


def parse_request(line):
    """The argv of a request, one JSON line {"argv": [...]}; ValueError names what is wrong."""
    try:
        request = json.loads(line.decode('utf-8'))
    except (UnicodeError, ValueError) as exc:
        raise ValueError('request: not a JSON line') from exc
    if not isinstance(request, dict):
        raise ValueError('request: must be a JSON object')
    argv = request.get('argv')
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) and a for a in argv) or not argv[0].startswith('/'):
        raise ValueError('argv: must be a non-empty list of strings, the program an absolute path')
    return argv


class Runner:
    """The server side: runs the commands the daemon's user asks for."""

    def __init__(self, client_uid):
        self.client_uid = client_uid
        self.running = 0

    async def handle(self, reader, writer):
        """One request: check the sender, run the command, answer {'exit': n} or {'error': why}."""
        try:
            reply = await self._serve(reader, writer)
        except (ValueError, asyncio.TimeoutError, asyncio.LimitOverrunError) as exc:
            reply = {'error': str(exc) or 'request: too slow or too long'}
        try:
            writer.write((json.dumps(reply) + '\n').encode('utf-8'))
            await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _serve(self, reader, writer):
        uid = peer_uid(writer.get_extra_info('socket'))
        if uid != self.client_uid:
            log('command_request_refused', uid=uid, reason="not the checker's user")
            return {'error': "refused: only the checker's user may run checks"}
        line = await asyncio.wait_for(reader.readline(), REQUEST_DEADLINE)
        argv = parse_request(line)
        if self.running >= MAX_RUNNING:
            return {'error': 'busy: %d commands running' % self.running}
        self.running += 1
        try:
            status = await run_command(argv, MAX_SECONDS, hangup=reader.read(1))
        finally:
            self.running -= 1
        return {'exit': status} if status is not None else {'error': 'killed after %ss' % MAX_SECONDS}


async def serve(socket_path, client_user):
    """Run the command runner on `socket_path` for `client_user` until stopped."""
    runner = Runner(pwd.getpwnam(client_user).pw_uid)
    try:
        os.unlink(socket_path)
    except FileNotFoundError:
        pass
    server = await asyncio.start_unix_server(runner.handle, path=socket_path, limit=MAX_REQUEST)
    os.chmod(socket_path, 0o666)  # any local process may connect; only the client's user is served (peer_uid)
    log('command_runner_started', socket=socket_path, client=client_user)
    async with server:
        await server.serve_forever()


async def run_remote(socket_path, argv):
    """The daemon's side: have the runner run argv; return its exit status (OSError/ValueError when it cannot).

    Cancelling this (the check's timeout) hangs up, and the runner kills the command's group.
    """
    reader, writer = await asyncio.open_unix_connection(socket_path)
    try:
        writer.write((json.dumps({'argv': argv}) + '\n').encode('utf-8'))
        await writer.drain()
        line = await reader.readline()
    finally:
        writer.close()
    try:
        reply = json.loads(line.decode('utf-8'))
    except (UnicodeError, ValueError) as exc:
        raise ValueError('command runner: no answer') from exc
    if not isinstance(reply, dict) or not isinstance(reply.get('exit'), int):
        raise ValueError('command runner: %s' % (reply.get('error') if isinstance(reply, dict) else 'bad answer'))
    return reply['exit']
