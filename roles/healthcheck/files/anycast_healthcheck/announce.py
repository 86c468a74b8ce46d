# Copyright: anycast.nva contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""BIRD's announcement state (the contract with the bird role) and BIRD's control socket.

The live state file defines one BIRD function, `anycast_state(prefix)`: 0 withdrawn, 1
announced, 1 + n announced with n extra prepends. bird.conf's export filter calls it; a
prefix the function does not name is withdrawn, so bird.conf and this file may change in
either order.
"""

import asyncio
import os
import re
import tempfile

HEADER = '# Written by anycast-healthcheck: 0 withdrawn, 1 announced, 1+n prepended n times.'
ROUTE_RE = re.compile(r'^(\d+\.\d+\.\d+\.\d+/\d+)\s')


def render_state(values):
    """The live state file for `values` (prefix -> announce value); prefixes at 0 are left out."""
    lines = [HEADER, 'function anycast_state(prefix p)', '{']
    lines += ['  if p = %s then return %d;' % (prefix, value) for prefix, value in sorted(values.items()) if value]
    lines += ['  return 0;', '}']
    return '\n'.join(lines) + '\n'


def read_text(path):
    """Text of a file, '' if it does not exist."""
    try:
        with open(path, encoding='utf-8') as handle:
            return handle.read()
    except FileNotFoundError:
        return ''


def atomic_write(path, text, mode=0o640):
    """Write a file by temp file + rename in the same directory (readers never see half)."""
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path), dir=directory)
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(text)
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


class BirdError(RuntimeError):
    """BIRD could not be reached, or refused a command."""


class BirdUnreachable(BirdError):
    """BIRD's control socket does not answer."""


class BirdControl:
    """One connection to BIRD's control socket, speaking its CLI protocol directly (no birdc fork).

    A reply is lines of a 4-digit code and '-' (more follows) or ' ' (last line); a line that
    starts with a space continues the previous code. Codes >= 8000 are errors.
    """

    def __init__(self, path):
        self.path = path
        self.reader = self.writer = None

    async def __aenter__(self):
        try:
            self.reader, self.writer = await asyncio.open_unix_connection(self.path)
            await self.reader.readline()  # greeting: 0001 BIRD x.y ready.
        except OSError as exc:
            raise BirdUnreachable('cannot reach BIRD at %s: %s' % (self.path, exc)) from exc
        return self

    async def __aexit__(self, *exc):
        if self.writer:
            self.writer.close()

    async def command(self, text):
        """Send one command; return (code of the last line, the reply's text lines)."""
        self.writer.write(text.encode('utf-8') + b'\n')
        lines = []
        while True:
            raw = (await self.reader.readline()).decode('utf-8', 'replace').rstrip('\n')
            if not raw:
                raise BirdUnreachable('BIRD closed the control socket')
            coded = len(raw) >= 5 and raw[:4].isdigit() and raw[4] in '- '
            lines.append(raw[5:] if coded else raw[1:])
            if coded and raw[4] == ' ':
                return int(raw[:4]), lines


async def with_bird(path, conversation, timeout):
    """Run `conversation(bird)` over one connection to BIRD's control socket within `timeout` seconds."""
    async def talk():
        async with BirdControl(path) as bird:
            return await conversation(bird)
    try:
        return await asyncio.wait_for(talk(), timeout)
    except asyncio.TimeoutError as exc:
        raise BirdUnreachable('BIRD at %s did not answer within %s s' % (path, timeout)) from exc
    except OSError as exc:
        raise BirdUnreachable('cannot talk to BIRD at %s: %s' % (path, exc)) from exc


async def bird_commands(path, commands, timeout=5.0):
    """Run commands over one connection within `timeout`; return their (code, lines)."""
    async def conversation(bird):
        return [await bird.command(text) for text in commands]
    return await with_bird(path, conversation, timeout)


async def bird_configure(path, timeout=5.0):
    """Ask BIRD to re-read its configuration (a filter change: sessions stay up); return its last line."""
    [(code, lines)] = await bird_commands(path, ['configure'], timeout)
    if code >= 8000:
        raise BirdError(' | '.join(lines))
    return lines[-1]


def bgp_sessions(lines):
    """`show protocols` -> {BGP protocol name: True when Established}."""
    sessions = {}
    for line in lines:
        fields = line.split()
        if len(fields) >= 2 and fields[1] == 'BGP':
            sessions[fields[0]] = 'Established' in fields[5:]
    return sessions


async def bird_view(path, prefixes, timeout=2.0):
    """What BIRD does with each prefix, read over its control socket.

    Returns {'sessions': {protocol: established}, 'values': {prefix: anycast_state() as BIRD
    evaluates it, None if it cannot}, 'exported': {prefix: [sessions that export it]}}.
    """
    async def conversation(bird):
        _code, lines = await bird.command('show protocols')
        sessions = bgp_sessions(lines)
        values = {}
        for prefix in prefixes:
            code, lines = await bird.command('eval anycast_state(%s)' % prefix)
            values[prefix] = int(lines[-1]) if code < 8000 and lines[-1].strip().isdigit() else None
        exported = {prefix: [] for prefix in prefixes}  # and any other route BIRD exports
        for name in sorted(name for name, up in sessions.items() if up):
            code, lines = await bird.command('show route export %s' % name)
            for line in lines if code < 8000 else ():
                match = ROUTE_RE.match(line.strip() + ' ')
                if match:
                    exported.setdefault(match.group(1), []).append(name)
        return {'sessions': sessions, 'values': values, 'exported': exported}
    return await with_bird(path, conversation, timeout)


async def disable_sessions(path, timeout=5.0):
    """Last resort: take every BGP session down (Route Server then drops what this NVA announced)."""
    [(_code, lines)] = await bird_commands(path, ['show protocols'], timeout)
    names = sorted(bgp_sessions(lines))
    replies = await bird_commands(path, ['disable %s' % name for name in names], timeout)
    failed = [name for name, (code, _lines) in zip(names, replies) if code >= 8000]
    if failed:
        raise BirdError('BIRD refused to disable %s' % ', '.join(failed))
    return names


async def enable_sessions(path, names, timeout=5.0):
    """Undo disable_sessions for the sessions it took down."""
    await bird_commands(path, ['enable %s' % name for name in names], timeout)


def bird_running():
    """True when a process named bird runs on this host (its control socket may be gone)."""
    for pid in os.listdir('/proc'):
        if pid.isdigit():
            try:
                with open('/proc/%s/comm' % pid, encoding='utf-8') as handle:
                    if handle.read().strip() == 'bird':
                        return True
            except OSError:
                continue
    return False
