# Copyright: anycast.nva contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""BIRD's state file (docs/dev/bird-announce-contract.md) and its control socket."""

import asyncio
import os
import re
import tempfile

DEFINE_RE = re.compile(r'^\s*define\s+(ANYCAST_[0-9_]+)\s*=\s*\d+\s*;', re.MULTILINE)


def define_name(prefix):
    """'10.250.0.10/32' -> 'ANYCAST_10_250_0_10' (the contract's naming)."""
    return 'ANYCAST_' + prefix.split('/')[0].replace('.', '_')


def render_state(withdrawn_text, values):
    """Render the live state file: every define of the withdrawn file, then ours.

    Starting from the withdrawn file keeps prefixes the checker does not manage at 0;
    `values` maps prefix -> announce value.
    """
    ours = {define_name(p): v for p, v in values.items()}
    names = list(dict.fromkeys(DEFINE_RE.findall(withdrawn_text or '')))
    names += [n for n in sorted(ours) if n not in names]
    lines = ['# Written by anycast-healthcheck: 0 withdrawn, 1 announced, 1+n prepended n times.']
    lines += ['define %s = %d;' % (name, ours.get(name, 0)) for name in names]
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
    """BIRD refused or could not be reached."""


async def bird_configure(sock_path, timeout=5.0):
    """Ask BIRD to re-read its configuration; return its last reply line.

    Speaks BIRD's CLI protocol directly (4-digit code, '-' continues, ' ' ends; codes
    >= 8000 are errors) instead of forking birdc: a change reaches BIRD in milliseconds.
    """
    async def talk():
        reader, writer = await asyncio.open_unix_connection(sock_path)
        try:
            await reader.readline()  # greeting: 0001 BIRD x.y ready.
            writer.write(b'configure\n')
            lines = []
            while True:
                line = (await reader.readline()).decode('utf-8', 'replace').rstrip('\n')
                if not line:
                    raise BirdError('BIRD closed the control socket')
                lines.append(line)
                if len(line) >= 5 and line[:4].isdigit() and line[4] == ' ':
                    if int(line[:4]) >= 8000:
                        raise BirdError(' | '.join(lines))
                    return line
        finally:
            writer.close()
    try:
        return await asyncio.wait_for(talk(), timeout)
    except (OSError, asyncio.TimeoutError) as exc:
        raise BirdError('cannot reach BIRD at %s: %s' % (sock_path, exc or 'timeout')) from exc
