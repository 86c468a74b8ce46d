# Copyright: anycast.nva contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""anycast-healthcheck: a fail-closed health checker that switches BIRD announcements.

Per anycast prefix it runs HTTP(S), TCP and command checks, keeps a rise/fall state
machine, writes BIRD's state file (docs/dev/bird-announce-contract.md: one
`define ANYCAST_<addr> = N;` per prefix, 0 withdrawn, 1 announced, 1+n prepended n times)
and asks BIRD to reconfigure over its control socket (a filter change: sessions stay up).

Python standard library only (it runs on the NVA) and one thread with one asyncio loop.
Plain TCP and HTTP probes are small state machines on an epoll of their own (no task,
future or timer per probe); rounds due at the same instant share one timer, and regular
rounds stay on a grid so that 50 prefixes probe together. HTTPS and command checks run
as coroutines of the same loop.
"""

import _socket
import argparse
import errno
import ipaddress
import json
import math
import os
import re
import select
import signal
import socket
import sys
import tempfile
import time
import urllib.parse
import weakref

# asyncio imports ssl eagerly (about 4 MB of RSS). HTTPS checks do TLS themselves over a
# MemoryBIO, so asyncio's copy is not needed: hide ssl while asyncio loads, then let
# `_ssl_context` import it only when an HTTPS check exists.
sys.modules.setdefault('ssl', None)
import asyncio  # noqa: E402  pylint: disable=wrong-import-position,wrong-import-order
if sys.modules.get('ssl') is None:
    del sys.modules['ssl']

# Per-prefix defaults; the role README explains the arithmetic behind them and a unit
# test keeps the role's defaults equal to these.
PREFIX_DEFAULTS = {
    'interval': 0.4,
    'fast_interval': 0.03,
    'timeout': 0.25,
    'rise': 3,
    'fall': 5,
    'on_failure': 'withdraw',
    'prepend': 3,
    'drain_withdraw_after': 60.0,
}
GLOBAL_DEFAULTS = {
    'bird_socket': '/run/bird/bird.ctl',
    'state_file': '/run/anycast-nva/announce.conf',
    'withdrawn_file': '/etc/anycast-nva/announce.withdrawn.conf',
    'control_socket': '/run/anycast-healthcheck/control.sock',
    'drain_file': '/var/lib/anycast-healthcheck/drain.json',
    'metrics_listen': '127.0.0.1:9469',
    'metrics_textfile': '',
    'metrics_textfile_interval': 10.0,
}
CHECK_KEYS = {
    'tcp': {'type', 'name', 'host', 'port'},
    'http': {'type', 'name', 'url', 'expect_status', 'body_match', 'body_regex', 'tls_verify', 'ca_file', 'server_name', 'keepalive'},
    'command': {'type', 'name', 'argv'},
}
ON_FAILURE = ('withdraw', 'prepend')
MAX_BODY = 65536
DEFINE_RE = re.compile(r'^\s*define\s+(ANYCAST_[0-9_]+)\s*=\s*\d+\s*;', re.MULTILINE)


class ConfigError(ValueError):
    """A configuration value is wrong; the message starts with the field's path."""


# ---------------------------------------------------------------------------
# Configuration validation (also run by `check-config`, the role's `validate:`)
# ---------------------------------------------------------------------------

def _fail(path, message, value=None):
    shown = '' if value is None else ' (got %s)' % json.dumps(value)
    raise ConfigError('%s: %s%s' % (path, message, shown))


def _number(obj, key, path, low, high, integer=False):
    value = obj[key]
    kind = int if integer else (int, float)
    # bool is an int in Python: refuse it explicitly so `rise: true` is an error.
    if isinstance(value, bool) or not isinstance(value, kind) or not low <= value <= high:
        what = 'an integer' if integer else 'a number'
        _fail('%s.%s' % (path, key), 'must be %s between %s and %s' % (what, low, high), value)
    return value


def _string(obj, key, path, allow_empty=False):
    value = obj[key]
    if not isinstance(value, str) or (not allow_empty and not value):
        _fail('%s.%s' % (path, key), 'must be a non-empty string', value)
    return value


def _unknown_keys(obj, allowed, path):
    unknown = sorted(set(obj) - set(allowed))
    if unknown:
        _fail(path, 'unknown option(s) %s; allowed: %s' % (', '.join(unknown), ', '.join(sorted(allowed))))


def _ip(value, path):
    try:
        return str(ipaddress.ip_address(value))
    except (ValueError, TypeError):
        return _fail(path, 'must be an IP address', value)


def _check_tcp(check, path):
    for key in ('host', 'port'):
        if key not in check:
            _fail('%s.%s' % (path, key), 'is required for a tcp check')
    check['host'] = _ip(check['host'], path + '.host')
    _number(check, 'port', path, 1, 65535, integer=True)
    check.setdefault('name', 'tcp://%s:%d' % (check['host'], check['port']))


def _check_http(check, path):
    if 'url' not in check:
        _fail(path + '.url', 'is required for an http check')
    url = _string(check, 'url', path)
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ('http', 'https') or not parts.hostname or port == -1 or port == 0:
        _fail(path + '.url', 'must be http://IP[:PORT]/PATH or https://... with a port between 1 and 65535', url)
    # An IP, not a name: a DNS outage must not withdraw the anycast prefix (server_name sets the TLS name).
    _ip(parts.hostname, path + '.url (host)')
    status = check.setdefault('expect_status', [200])
    if isinstance(status, int) and not isinstance(status, bool):
        status = check['expect_status'] = [status]
    if not isinstance(status, list) or not status or not all(
            isinstance(s, int) and not isinstance(s, bool) and 100 <= s <= 599 for s in status):
        _fail(path + '.expect_status', 'must be an HTTP status code (100-599) or a non-empty list of them', status)
    if 'body_match' in check:
        _string(check, 'body_match', path)
    if 'body_regex' in check:
        try:
            re.compile(_string(check, 'body_regex', path))
        except re.error as exc:
            _fail(path + '.body_regex', 'is not a valid regular expression: %s' % exc, check['body_regex'])
    for key in ('tls_verify', 'keepalive'):
        if not isinstance(check.setdefault(key, True), bool):
            _fail('%s.%s' % (path, key), 'must be true or false', check[key])
    for key in ('ca_file', 'server_name'):
        if key in check:
            _string(check, key, path)
            if parts.scheme != 'https':
                _fail('%s.%s' % (path, key), 'only applies to https:// URLs')
    check.setdefault('name', url)


def _check_command(check, path):
    argv = check.get('argv')
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) and a for a in argv):
        _fail(path + '.argv', 'must be a non-empty list of non-empty strings (no shell)', argv)
    if not argv[0].startswith('/'):
        _fail(path + '.argv', 'the program must be an absolute path', argv[0])
    check.setdefault('name', ' '.join(argv))


CHECK_VALIDATORS = {'tcp': _check_tcp, 'http': _check_http, 'command': _check_command}


def validate_check(check, path):
    """Validate one check in place (adding defaults) and return it."""
    if not isinstance(check, dict):
        _fail(path, 'must be a mapping', check)
    ctype = check.get('type')
    if ctype not in CHECK_KEYS:
        _fail(path + '.type', 'must be one of %s' % ', '.join(sorted(CHECK_KEYS)), ctype)
    _unknown_keys(check, CHECK_KEYS[ctype], path)
    if 'name' in check:
        _string(check, 'name', path)
    CHECK_VALIDATORS[ctype](check, path)
    return check


def validate_prefix(spec, path):
    """Validate one prefix entry in place (adding defaults) and return it."""
    if not isinstance(spec, dict):
        _fail(path, 'must be a mapping', spec)
    _unknown_keys(spec, set(PREFIX_DEFAULTS) | {'prefix', 'checks'}, path)
    prefix = spec.get('prefix')
    try:
        net = ipaddress.IPv4Network(prefix)
    except (ValueError, TypeError):
        net = None
    if net is None or net.prefixlen != 32 or not isinstance(prefix, str) or '/' not in prefix:
        _fail(path + '.prefix', 'must be an IPv4 /32 such as 10.250.0.10/32 (Route Server has no IPv6)', prefix)
    spec['prefix'] = str(net)
    for key, value in PREFIX_DEFAULTS.items():
        spec.setdefault(key, value)
    _number(spec, 'interval', path, 0.01, 3600)
    _number(spec, 'fast_interval', path, 0.01, 3600)
    _number(spec, 'timeout', path, 0.01, 3600)
    if spec['fast_interval'] > spec['interval']:
        _fail(path + '.fast_interval', 'must not exceed interval (%s)' % spec['interval'], spec['fast_interval'])
    # A probe slower than the interval would pile up probes in normal operation.
    if spec['timeout'] > spec['interval']:
        _fail(path + '.timeout', 'must not exceed interval (%s)' % spec['interval'], spec['timeout'])
    _number(spec, 'rise', path, 1, 1000, integer=True)
    _number(spec, 'fall', path, 1, 1000, integer=True)
    _number(spec, 'prepend', path, 1, 10, integer=True)
    _number(spec, 'drain_withdraw_after', path, 0, 86400)
    if spec['on_failure'] not in ON_FAILURE:
        _fail(path + '.on_failure', 'must be one of %s' % ', '.join(ON_FAILURE), spec['on_failure'])
    checks = spec.get('checks')
    if not isinstance(checks, list) or not checks:
        _fail(path + '.checks', 'must be a non-empty list of checks (all must pass)', checks)
    for i, check in enumerate(checks):
        validate_check(check, '%s.checks[%d]' % (path, i))
    names = [c['name'] for c in checks]
    if len(set(names)) != len(names):
        _fail(path + '.checks', 'check names must be unique within a prefix', names)
    return spec


def validate_config(raw):
    """Validate a whole configuration (a dict from JSON); return it with defaults filled in."""
    if not isinstance(raw, dict):
        _fail('config', 'must be a JSON object', None)
    config = json.loads(json.dumps(raw))  # deep copy: never change the caller's data
    _unknown_keys(config, set(GLOBAL_DEFAULTS) | {'prefixes'}, 'config')
    for key, value in GLOBAL_DEFAULTS.items():
        config.setdefault(key, value)
    for key in ('bird_socket', 'state_file', 'withdrawn_file', 'control_socket', 'drain_file'):
        if not isinstance(config[key], str) or not config[key].startswith('/'):
            _fail(key, 'must be an absolute path', config[key])
    if not isinstance(config['metrics_textfile'], str) or (config['metrics_textfile'] and not config['metrics_textfile'].startswith('/')):
        _fail('metrics_textfile', 'must be an absolute path or empty (off)', config['metrics_textfile'])
    _number(config, 'metrics_textfile_interval', 'config', 1, 3600)
    if config['metrics_listen']:
        parse_listen(config['metrics_listen'])
    prefixes = config.get('prefixes')
    if not isinstance(prefixes, list):
        _fail('prefixes', 'must be a list', prefixes)
    seen = set()
    for i, spec in enumerate(prefixes):
        validate_prefix(spec, 'prefixes[%d]' % i)
        if spec['prefix'] in seen:
            _fail('prefixes[%d].prefix' % i, 'is listed twice', spec['prefix'])
        seen.add(spec['prefix'])
    return config


def parse_listen(value):
    """'127.0.0.1:9469' -> ('127.0.0.1', 9469); errors name metrics_listen."""
    host, _sep, port = str(value).rpartition(':')
    try:
        ipaddress.ip_address(host.strip('[]'))
        port = int(port)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        _fail('metrics_listen', 'must be IP:PORT (for example 127.0.0.1:9469) or empty (off)', value)
    return host.strip('[]'), port


def fallback_paths(path):
    """The file paths of a configuration that does not validate (defaults where unreadable)."""
    config = dict(GLOBAL_DEFAULTS, prefixes=[])
    try:
        with open(path, encoding='utf-8') as handle:
            raw = json.load(handle)
    except (OSError, ValueError):
        return config
    for key in ('bird_socket', 'state_file', 'withdrawn_file'):
        if isinstance(raw, dict) and isinstance(raw.get(key), str) and raw[key].startswith('/'):
            config[key] = raw[key]
    return config


def load_config(path):
    """Read and validate the JSON configuration file."""
    try:
        with open(path, encoding='utf-8') as handle:
            raw = json.load(handle)
    except OSError as exc:
        raise ConfigError('%s: cannot read: %s' % (path, exc.strerror)) from exc
    except json.JSONDecodeError as exc:
        raise ConfigError('%s: not valid JSON: %s' % (path, exc)) from exc
    return validate_config(raw)


# ---------------------------------------------------------------------------
# State machine (pure logic: no I/O, time passed in)
# ---------------------------------------------------------------------------

def state_name(value):
    """Human name of an announce value."""
    if value == 0:
        return 'withdrawn'
    return 'announced' if value == 1 else 'prepended'


HEALTH_KEYS = ('checks', 'interval', 'fast_interval', 'timeout', 'rise', 'fall')


def health_key(spec):
    """Prefixes whose checks and timing are identical share one probe schedule and one verdict."""
    return json.dumps([spec[k] for k in HEALTH_KEYS], sort_keys=True)


class Health:
    """Rise/fall hysteresis over probe results.

    Starts down (fail closed); up after `rise` consecutive passing probes, down again
    after `fall` consecutive failing ones.
    """

    def __init__(self, spec, previous=None):
        self.spec = spec
        self.healthy = previous.healthy if previous else False
        self.was_healthy = previous.was_healthy if previous else False
        self.ok_run = 0
        self.fail_run = 0

    def record(self, ok):
        """Feed one probe result; return 'rise' or 'fall' when health flips, else None."""
        if ok:
            self.ok_run += 1
            self.fail_run = 0
            if not self.healthy and self.ok_run >= self.spec['rise']:
                self.healthy = self.was_healthy = True
                return 'rise'
        else:
            self.fail_run += 1
            self.ok_run = 0
            if self.healthy and self.fail_run >= self.spec['fall']:
                self.healthy = False
                return 'fall'
        return None

    def next_delay(self):
        """Seconds to the next probe: fast while a failure of a healthy target is being confirmed."""
        if self.healthy and self.fail_run > 0:
            return self.spec['fast_interval']
        return self.spec['interval']


class Prefix:
    """Announcement decision of one prefix: health, `on_failure` and the drain switch."""

    def __init__(self, spec, health):
        self.spec = spec
        self.health = health
        self.drained_at = None

    def drain(self, now):
        """Start draining (a second drain keeps the first start time)."""
        if self.drained_at is None:
            self.drained_at = now

    def undrain(self):
        """Stop draining."""
        self.drained_at = None

    def drain_deadline(self):
        """Wall-clock time at which a drained prefix is withdrawn, or None."""
        if self.drained_at is None:
            return None
        return self.drained_at + self.spec['drain_withdraw_after']

    def value(self, now):
        """Announce value for BIRD: 0 withdrawn, 1 announced, 1+n prepended n times."""
        prepended = 1 + self.spec['prepend']
        if self.drained_at is not None:
            # Drain: de-prefer first so traffic moves gently, withdraw after the delay.
            if now >= self.drain_deadline() or not self.health.healthy:
                return 0
            return prepended
        if self.health.healthy:
            return 1
        # on_failure=prepend keeps a de-preferred route, but only once the target has been
        # healthy: at start nothing is announced (fail closed).
        if self.spec['on_failure'] == 'prepend' and self.health.was_healthy:
            return prepended
        return 0


# ---------------------------------------------------------------------------
# BIRD state file and control socket
# ---------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------

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
    path = (parts.path or '/') + ('?' + parts.query if parts.query else '')
    request = ('GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: anycast-healthcheck\r\n'
               'Connection: close\r\n\r\n' % (path, check.get('server_name', parts.netloc))).encode('ascii')
    need_body = 'body_match' in check or 'body_regex' in check
    return http_verdict(check, await _http_exchange(check, parts, request, need_body))


async def probe_command(check):
    """The command exits 0."""
    proc = await asyncio.create_subprocess_exec(
        *check['argv'], stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        code = await proc.wait()
    except asyncio.CancelledError:
        # Timed out: never leave the child running behind us.
        proc.kill()
        await proc.wait()
        raise
    if code != 0:
        raise ValueError('exit status %d' % code)
    return 'exit status 0'


PROBES = {'tcp': probe_tcp, 'http': probe_http, 'command': probe_command}


# ---------------------------------------------------------------------------
# The probe engine: plain TCP and HTTP probes without tasks or futures
# ---------------------------------------------------------------------------

# At 50 prefixes x 2.5 probes/s the cost that matters is per probe: asyncio's sock_* calls
# take a future, a handle and two epoll_ctl per wait. Here a probe is a small state machine
# on a socket registered once, edge-triggered, in an epoll of our own that the asyncio loop
# watches as a single reader; probes started together share epoll_wait calls and one timeout
# timer. HTTPS and command checks keep the coroutines above.
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
    key = (check['url'], 'body_match' in check or 'body_regex' in check, keep)
    plan = _PLANS.get(key)
    if plan is None:
        parts = urllib.parse.urlsplit(check['url'])
        path = (parts.path or '/') + ('?' + parts.query if parts.query else '')
        request = ('GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: anycast-healthcheck\r\n%s\r\n'
                   % (path, parts.netloc, '' if keep else 'Connection: close\r\n')).encode('ascii')
        plan = _PLANS[key] = ((parts.hostname, parts.port or 80), request, key[1])
    return plan


def http_verdict(check, data):
    """Judge an HTTP response; return the detail of a pass, raise ValueError for a failure."""
    head, _sep, body = data.partition(b'\r\n\r\n')
    fields = head.split(b'\r\n', 1)[0].split()
    if len(fields) < 2 or not fields[0].startswith(b'HTTP/') or not fields[1].isdigit():
        raise ValueError('not an HTTP response')
    status = int(fields[1])
    if status not in check['expect_status']:
        raise ValueError('status %d, expected %s' % (status, check['expect_status']))
    if 'body_match' in check or 'body_regex' in check:
        text = body.decode('utf-8', 'replace')
        if 'body_match' in check and check['body_match'] not in text:
            raise ValueError('body does not contain %r' % check['body_match'])
        if 'body_regex' in check and not re.search(check['body_regex'], text):
            raise ValueError('body does not match %r' % check['body_regex'])
    return 'status %d' % status


def _dechunk(body):
    """(decoded body, bytes after it) of a complete chunked body, None while incomplete."""
    out, pos = b'', 0
    while True:
        eol = body.find(b'\r\n', pos)
        if eol < 0:
            return None
        size = int(body[pos:eol].split(b';', 1)[0], 16)  # ValueError: not HTTP
        if size == 0:  # the last chunk, then optional trailers and an empty line
            end = eol + 2 if body.startswith(b'\r\n', eol + 2) else body.find(b'\r\n\r\n', eol + 2) + 2
            return (out, body[end + 2:]) if end > eol and len(body) >= end + 2 else None
        pos = eol + 2 + size + 2
        if len(body) < pos:
            return None
        out += body[eol + 2:pos - 2]


def http_answer(data, eof, need_body, keep):
    """(answer to judge, connection reusable) once `data` holds enough of the answer, else None.

    Enough is EOF or MAX_BODY bytes; the status line when neither the body nor the connection
    is wanted; otherwise the whole answer by its framing (Content-Length or chunked; an answer
    without either ends with the connection). A chunked body is returned decoded.
    """
    if eof or len(data) >= MAX_BODY:
        return data, False
    if not (need_body or keep):
        return (data, False) if b'\r\n' in data else None
    head, sep, body = data.partition(b'\r\n\r\n')
    if not sep:
        return None
    lines = head.lower().split(b'\r\n')
    fields = {name.strip(): value.strip() for name, _colon, value in (line.partition(b':') for line in lines[1:])}
    reusable = keep and lines[0].startswith(b'http/1.1 ') and b'close' not in fields.get(b'connection', b'')
    if b'chunked' in fields.get(b'transfer-encoding', b''):
        decoded = _dechunk(body)
        return None if decoded is None else (head + sep + decoded[0], reusable and not decoded[1])
    length = b'0' if lines[0].split()[1:2] in ([b'204'], [b'304']) else fields.get(b'content-length', b'')
    if not length.isdigit():
        return None if need_body else (data, False)  # unframed: only EOF ends it
    if len(body) < int(length):
        return None
    return data, reusable and len(body) == int(length)


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


# ---------------------------------------------------------------------------
# Logging, metrics, systemd notification
# ---------------------------------------------------------------------------

def log(event, **fields):
    """One JSON object per line on stdout (journald keeps it)."""
    record = {'ts': round(time.time(), 3), 'event': event}
    record.update(fields)
    print(json.dumps(record, sort_keys=False), flush=True)


def sd_notify(message):
    """Tell systemd about readiness / watchdog (no-op outside systemd)."""
    addr = os.environ.get('NOTIFY_SOCKET')
    if not addr:
        return
    if addr.startswith('@'):
        addr = '\0' + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(message.encode('ascii'), addr)
        except OSError:
            pass


def _labels(**labels):
    inner = ','.join('%s="%s"' % (k, str(v).replace('\\', r'\\').replace('"', r'\"')) for k, v in labels.items())
    return '{%s}' % inner


class Metrics:
    """Counters and gauges, rendered in the Prometheus text format."""

    def __init__(self):
        self.transitions = {}
        self.last_change = {}
        self.check_seconds = {}
        self.check_total = {}
        self.configure_total = {'ok': 0, 'error': 0}
        self.configure_seconds = 0.0

    def observe(self, prefix, results):
        """Record the results of one probe round."""
        for res in results:
            self.check_seconds[(prefix, res['name'])] = res['seconds']
            key = (prefix, res['name'], 'ok' if res['ok'] else 'fail')
            self.check_total[key] = self.check_total.get(key, 0) + 1

    def changed(self, prefix, now):
        """Record a state change of a prefix."""
        self.transitions[prefix] = self.transitions.get(prefix, 0) + 1
        self.last_change[prefix] = now

    def render(self, machines, now):
        """The whole exposition text."""
        out = []

        def family(name, kind, help_text, samples):
            out.append('# HELP anycast_healthcheck_%s %s' % (name, help_text))
            out.append('# TYPE anycast_healthcheck_%s %s' % (name, kind))
            out.extend('anycast_healthcheck_%s%s %s' % (name, labels, value) for labels, value in samples)

        family('announce_value', 'gauge', 'Value written for BIRD: 0 withdrawn, 1 announced, 1+n prepended n times.',
               [(_labels(prefix=p), m.value(now)) for p, m in machines.items()])
        family('prefix_state', 'gauge', 'Current state of the prefix (1 for the current state).',
               [(_labels(prefix=p, state=s), int(state_name(m.value(now)) == s))
                for p, m in machines.items() for s in ('withdrawn', 'announced', 'prepended')])
        family('healthy', 'gauge', 'Health after rise/fall hysteresis (1 healthy).',
               [(_labels(prefix=p), int(m.health.healthy)) for p, m in machines.items()])
        family('drained', 'gauge', 'Drain switch of the prefix (1 drained).',
               [(_labels(prefix=p), int(m.drained_at is not None)) for p, m in machines.items()])
        family('transitions_total', 'counter', 'State changes since the daemon started.',
               [(_labels(prefix=p), self.transitions.get(p, 0)) for p in machines])
        family('last_change_timestamp_seconds', 'gauge', 'Unix time of the last state change (0: none yet).',
               [(_labels(prefix=p), self.last_change.get(p, 0)) for p in machines])
        family('check_duration_seconds', 'gauge', 'Duration of the last run of each check.',
               [(_labels(prefix=p, check=c), v) for (p, c), v in sorted(self.check_seconds.items()) if p in machines])
        family('checks_total', 'counter', 'Check runs by result.',
               [(_labels(prefix=p, check=c, result=r), v) for (p, c, r), v in sorted(self.check_total.items()) if p in machines])
        family('bird_configure_total', 'counter', 'BIRD reconfigurations by result.',
               [(_labels(result=r), v) for r, v in sorted(self.configure_total.items())])
        family('bird_configure_duration_seconds', 'gauge', 'Duration of the last BIRD reconfiguration.',
               [('', self.configure_seconds)])
        return '\n'.join(out) + '\n'


# ---------------------------------------------------------------------------
# The daemon
# ---------------------------------------------------------------------------

class Ticker:
    """Shared round timers: runners due at the same instant wake on one loop timer.

    Runners on their regular interval are kept on a grid (multiples of the interval on
    the loop clock), so groups with the same interval probe together and their probes
    share epoll_wait calls and timeout timers instead of waking the loop one by one.
    """

    def __init__(self, loop=None):
        self.due = {}  # when -> {runner: None}
        self.loop = loop

    def add(self, runner, when):
        """Wake `runner.launch(when)` at loop time `when`."""
        bucket = self.due.get(when)
        if bucket is None:
            bucket = self.due[when] = {}
            # get_running_loop() costs a getpid() syscall: look the loop up once.
            self.loop = self.loop or asyncio.get_running_loop()
            self.loop.call_at(when, self._fire, when)
        bucket[runner] = None

    def remove(self, runner, when):
        """Forget a pending wake-up (its timer, if left empty, fires and does nothing)."""
        bucket = self.due.get(when)
        if bucket is not None:
            bucket.pop(runner, None)

    def _fire(self, when):
        for runner in list(self.due.pop(when, ())):
            runner.launch(when)


def next_round(last, delay, interval):
    """Loop time of the next round: `last + delay`; on the regular interval, the nearest grid point."""
    when = last + delay
    if delay == interval:
        when = round(when / interval) * interval
        if when <= last:
            when += interval
    return when


class Runner:
    """Probes one health group (prefixes with identical checks and timing) on shared timers, no thread."""

    def __init__(self, daemon, spec, health):
        self.daemon = daemon
        self.spec = spec
        self.health = health
        self.prefixes = []
        self.last_start = None
        self.when = None
        self.rounds = set()
        self.last_results = []
        self.stopped = False
        self.fast = [fast_capable(c) for c in spec['checks']]
        self.kept = [KeptConnection(self.idle_closed) if keeps_connection(c) else None for c in spec['checks']]
        self.early_ok = self.early_next = False

    def start(self):
        """Probe now, then on schedule."""
        self.stopped = False
        self.daemon.ticker.loop = self.daemon.ticker.loop or asyncio.get_running_loop()
        self._schedule(self.daemon.ticker.loop.time())

    def stop(self):
        """Cancel the next round and any round in flight."""
        self.stopped = True
        if self.when is not None:
            self.daemon.ticker.remove(self, self.when)
            self.when = None
        for rnd in list(self.rounds):
            rnd.cancel()
        for kept in self.kept:
            if kept is not None:
                kept.close()

    def _schedule(self, when=None):
        if self.when is not None:
            self.daemon.ticker.remove(self, self.when)
        if when is None:
            delay, interval = self.health.next_delay(), self.spec['interval']
            when = next_round(self.last_start, delay, interval)
            now = self.daemon.ticker.loop.time()
            if when < now:  # the loop was stalled: go on from now, no burst of catch-up rounds
                when = next_round(now, delay, interval)
        self.when = when
        self.daemon.ticker.add(self, when)

    def launch(self, now):
        """Start a round. Rounds may overlap (a hung target times out while the fast
        confirmations go on), so a hung target is withdrawn about as fast as a refusing one."""
        self.when = None
        if self.stopped:
            return
        # A round on schedule allows one early round again (see idle_closed).
        self.early_ok, self.early_next = not self.early_next, False
        self.last_start = now
        rnd = Round(self)
        self.rounds.add(rnd)
        self._schedule()
        rnd.start()

    def idle_closed(self):
        """The server closed or reset a kept connection between rounds: probe now, not at the next tick.

        The application may have stopped; `fall` failed probes are still needed to withdraw.
        A server that merely closes idle connections sooner than the interval costs one early
        probe per round at most (which reconnects and passes), never a storm.
        """
        if self.stopped or self.rounds or not self.early_ok:
            return
        self.early_ok, self.early_next = False, True
        self._schedule(self.daemon.ticker.loop.time())

    def finish(self, rnd, results):
        """A round's checks have all answered: feed the state machine."""
        self.rounds.discard(rnd)
        if self.stopped:
            return
        self.last_results = results
        delay_before = self.health.next_delay()
        flip = self.health.record(all(r['ok'] for r in results))
        daemon = self.daemon
        for prefix in self.prefixes:
            daemon.metrics.observe(prefix, results)
            if flip:
                daemon.evaluate(prefix, flip, results)
        if self.health.next_delay() != delay_before:
            self._schedule()  # switch to (or back from) the fast interval at once


class Round:
    """One probe round of a runner: every check of the group, in parallel; done when all answered."""

    __slots__ = ('runner', 'results', 'pending', 'probes', 'tasks')

    def __init__(self, runner):
        self.runner = runner
        self.results = [None] * len(runner.spec['checks'])
        self.pending = len(self.results)
        self.probes, self.tasks = [], []

    def start(self):
        """Start every check (a probe may answer at once, e.g. no route to the host)."""
        runner = self.runner
        checks, timeout = runner.spec['checks'], runner.spec['timeout']
        for i, check in enumerate(checks):
            done = self._done_at(i)
            if runner.fast[i]:
                self.probes.append(runner.daemon.engine.start(check, timeout, done, runner.kept[i]))
            else:
                task = asyncio.ensure_future(run_check_task(check, timeout))
                task.add_done_callback(lambda t, done=done: t.cancelled() or done(t.result()))
                self.tasks.append(task)

    def _done_at(self, index):
        def done(result):
            self.results[index] = result
            self.pending -= 1
            if self.pending == 0:
                self.runner.finish(self, self.results)
        return done

    def cancel(self):
        """Stop the round's probes; it reports nothing."""
        self.pending = -1
        for probe in self.probes:
            probe.cancel()
        for task in self.tasks:
            task.cancel()


class Daemon:
    """Owns the runners, writes BIRD's state, serves control and metrics."""

    def __init__(self, config, config_path=None):
        self.config = config
        self.config_path = config_path
        self.runners = {}   # health key -> Runner
        self.prefixes = {}  # prefix -> Prefix
        self.runner_of = {}  # prefix -> Runner
        self.metrics = Metrics()
        self.announced = {}  # prefix -> value last pushed
        self.stopping = None
        self.apply_lock = None
        self.apply_pending = False
        self.apply_failed = False
        self.servers = {}
        self.drain_timers = {}
        self.ticker = Ticker()
        self.engine = None

    # -- decisions -------------------------------------------------------

    def evaluate(self, prefix, reason, results=None):
        """Recompute a prefix's value; on change log one line, count it and push it to BIRD."""
        state = self.prefixes.get(prefix)
        new = state.value(time.time()) if state and not self.stopping.is_set() else 0
        old = self.announced.get(prefix, 0)
        if state:
            self.announced[prefix] = new
        else:
            self.announced.pop(prefix, None)
        self._arm_drain_timer(prefix)
        if new == old:
            return
        self.metrics.changed(prefix, time.time())
        if results is None:
            results = self.runner_of[prefix].last_results if prefix in self.runner_of else []
        log('state_change', prefix=prefix, old=state_name(old), new=state_name(new), value=new, reason=reason, checks=results)
        if not self.stopping.is_set():
            self.request_apply()

    def _arm_drain_timer(self, prefix):
        timer = self.drain_timers.pop(prefix, None)
        if timer:
            timer.cancel()
        state = self.prefixes.get(prefix)
        deadline = state.drain_deadline() if state else None
        if deadline is not None and self.announced.get(prefix):
            delay = max(0.0, deadline - time.time())
            self.drain_timers[prefix] = asyncio.get_running_loop().call_later(delay, self.evaluate, prefix, 'drain-timeout')

    # -- BIRD --------------------------------------------------------------

    def request_apply(self):
        """Write the state file and reconfigure BIRD now; changes arriving meanwhile coalesce."""
        self.apply_pending = True
        if not self.apply_lock.locked():
            asyncio.ensure_future(self._apply_loop())

    async def _apply_loop(self):
        async with self.apply_lock:
            while self.apply_pending:
                self.apply_pending = False
                await self.apply_once(dict(self.announced))

    async def apply_once(self, values):
        """Write the given values and reconfigure BIRD; log (not raise) failures."""
        start = time.monotonic()
        try:
            text = render_state(read_text(self.config['withdrawn_file']), values)
            atomic_write(self.config['state_file'], text)
            reply = await bird_configure(self.config['bird_socket'])
            self.metrics.configure_total['ok'] += 1
            if self.apply_failed:
                log('bird_configure_recovered', reply=reply)
            self.apply_failed = False
        except (OSError, BirdError) as exc:
            self.metrics.configure_total['error'] += 1
            if not self.apply_failed:
                log('bird_configure_failed', error=str(exc))
            self.apply_failed = True
        self.metrics.configure_seconds = round(time.monotonic() - start, 6)
        self.write_textfile()

    async def _retry_apply(self):
        # BIRD down or starting: keep pushing our state until it takes it.
        while True:
            await asyncio.sleep(1.0)
            if self.apply_failed:
                self.request_apply()

    # -- drain -------------------------------------------------------------

    def load_drains(self):
        """Restore the drain switch from disk (maintenance survives a restart)."""
        try:
            drains = json.loads(read_text(self.config['drain_file']) or '{}')
        except ValueError:
            log('drain_file_unreadable', path=self.config['drain_file'])
            drains = {}
        for prefix, since in drains.items():
            if prefix in self.prefixes and isinstance(since, (int, float)):
                self.prefixes[prefix].drained_at = since

    def save_drains(self):
        """Persist the drain switch."""
        drains = {p: s.drained_at for p, s in self.prefixes.items() if s.drained_at is not None}
        atomic_write(self.config['drain_file'], json.dumps(drains, indent=1) + '\n', mode=0o644)

    def set_drain(self, prefix, drained):
        """Drain or undrain one prefix (or all when prefix is None); return the prefixes affected."""
        if prefix is not None and prefix not in self.prefixes:
            raise ValueError('unknown prefix %s; configured: %s' % (prefix, ', '.join(self.prefixes) or 'none'))
        targets = [prefix] if prefix else list(self.prefixes)
        now = time.time()
        for target in targets:
            if drained:
                self.prefixes[target].drain(now)
            else:
                self.prefixes[target].undrain()
        self.save_drains()
        for target in targets:
            self.evaluate(target, 'drain' if drained else 'undrain')
        return targets

    def status(self):
        """Everything a user wants to see, as JSON-able data."""
        now = time.time()
        return {p: {'state': state_name(s.value(now)), 'value': s.value(now), 'healthy': s.health.healthy,
                    'drained': s.drained_at is not None, 'drain_withdraw_at': s.drain_deadline(),
                    'checks': self.runner_of[p].last_results}
                for p, s in self.prefixes.items()}

    async def handle_control(self, reader, writer):
        """One JSON request per connection: drain, undrain, status."""
        try:
            request = json.loads((await reader.readline()).decode('utf-8') or '{}')
            command = request.get('command')
            if command in ('drain', 'undrain'):
                done = self.set_drain(request.get('prefix'), command == 'drain')
                reply = {'ok': True, 'command': command, 'prefixes': done, 'status': self.status()}
            elif command == 'status':
                reply = {'ok': True, 'status': self.status()}
            else:
                reply = {'ok': False, 'error': 'unknown command %r' % command}
        except (ValueError, OSError) as exc:
            reply = {'ok': False, 'error': str(exc)}
        writer.write((json.dumps(reply) + '\n').encode('utf-8'))
        await writer.drain()
        writer.close()

    # -- metrics -----------------------------------------------------------

    async def handle_metrics(self, reader, writer):
        """Minimal HTTP/1.0 server for GET /metrics."""
        try:
            request = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)) not in (b'\r\n', b'\n', b''):
                pass
            parts = request.split()
            if len(parts) >= 2 and parts[0] == b'GET' and parts[1] in (b'/metrics', b'/'):
                body = self.metrics.render(self.prefixes, time.time()).encode('utf-8')
                head = 'HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: %d\r\n\r\n' % len(body)
            else:
                body = b'not found\n'
                head = 'HTTP/1.0 404 Not Found\r\nContent-Length: %d\r\n\r\n' % len(body)
            writer.write(head.encode('ascii') + body)
            await writer.drain()
        except (OSError, asyncio.TimeoutError):
            pass
        finally:
            writer.close()

    def write_textfile(self):
        """node_exporter textfile collector output (atomic)."""
        path = self.config['metrics_textfile']
        if path:
            try:
                atomic_write(path, self.metrics.render(self.prefixes, time.time()), mode=0o644)
            except OSError as exc:
                log('metrics_textfile_failed', path=path, error=str(exc))

    async def _textfile_loop(self):
        while True:
            await asyncio.sleep(self.config['metrics_textfile_interval'])
            self.write_textfile()

    async def start_servers(self):
        """(Re)start the control socket and the metrics endpoint when their settings change."""
        wanted = {'control': self.config['control_socket'], 'metrics': self.config['metrics_listen']}
        for kind, setting in wanted.items():
            current = self.servers.get(kind)
            if current and current[0] == setting:
                continue
            if current:
                current[1].close()
                del self.servers[kind]
            if not setting:
                continue
            if kind == 'control':
                if os.path.exists(setting):
                    os.unlink(setting)  # stale socket of a killed predecessor
                old_umask = os.umask(0o077)  # only root and our own user may drain
                try:
                    server = await asyncio.start_unix_server(self.handle_control, path=setting)
                finally:
                    os.umask(old_umask)
            else:
                host, port = parse_listen(setting)
                server = await asyncio.start_server(self.handle_metrics, host, port)
            self.servers[kind] = (setting, server)

    # -- lifecycle ---------------------------------------------------------

    def install(self, config):
        """Create, keep or update runners and prefixes to match a (new) configuration.

        A prefix keeps its drain switch; a group whose checks and timing did not change
        keeps its runner, counters and health; a changed one starts new counters but
        keeps the prefix's health (no needless withdraw on a reload).
        """
        old_runners, old_prefixes, old_runner_of = self.runners, self.prefixes, self.runner_of
        self.runners, self.prefixes, self.runner_of = {}, {}, {}
        started = []
        for spec in config['prefixes']:
            prefix, key = spec['prefix'], health_key(spec)
            runner = self.runners.get(key) or old_runners.pop(key, None)
            if runner is None:
                previous = old_runner_of.get(prefix)
                runner = Runner(self, spec, Health(spec, previous.health if previous else None))
                started.append(runner)
            if key not in self.runners:
                runner.prefixes = []
                self.runners[key] = runner
            runner.prefixes.append(prefix)
            self.runner_of[prefix] = runner
            state = Prefix(spec, runner.health)
            if prefix in old_prefixes:
                state.drained_at = old_prefixes[prefix].drained_at
            self.prefixes[prefix] = state
        for runner in old_runners.values():
            runner.stop()
        return started

    def reload(self):
        """SIGHUP: re-read the configuration; keep the state of unchanged prefixes."""
        try:
            config = load_config(self.config_path)
        except ConfigError as exc:
            log('reload_failed', error=str(exc))
            return
        removed = [p for p in self.prefixes if p not in {s['prefix'] for s in config['prefixes']}]
        self.config = config
        for runner in self.install(config):
            runner.start()
        for prefix in removed + list(self.prefixes):
            self.evaluate(prefix, 'removed' if prefix in removed else 'reload')
        asyncio.ensure_future(self.start_servers())
        log('reloaded', prefixes=list(self.prefixes), removed=removed)

    async def run(self):
        """Main: fail closed, serve, probe, until SIGTERM/SIGINT; then withdraw everything."""
        loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        self.apply_lock = asyncio.Lock()
        self.engine = probe_engine()
        self.install(self.config)
        self.load_drains()
        # Fail closed: whatever the file said before, nothing is announced until `rise`.
        await self.apply_once({p: 0 for p in self.prefixes})
        await self.start_servers()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        background = [asyncio.ensure_future(self._retry_apply()), asyncio.ensure_future(self._textfile_loop())]
        watchdog_usec = int(os.environ.get('WATCHDOG_USEC', '0') or 0)
        if watchdog_usec:
            background.append(asyncio.ensure_future(self._watchdog(watchdog_usec / 1e6 / 3)))
        for runner in self.runners.values():
            runner.start()
        log('started', prefixes=list(self.prefixes), groups=len(self.runners),
            drained=[p for p, s in self.prefixes.items() if s.drained_at is not None])
        sd_notify('READY=1')
        await self.stopping.wait()
        sd_notify('STOPPING=1')
        for task in background:
            task.cancel()
        for runner in self.runners.values():
            runner.stop()
        for prefix in self.prefixes:
            self.evaluate(prefix, 'stop')
        await self.apply_once({p: 0 for p in self.prefixes})
        log('stopped')

    async def _watchdog(self, period):
        # A stuck loop stops these pings: systemd then kills us and ExecStopPost withdraws.
        while True:
            sd_notify('WATCHDOG=1')
            await asyncio.sleep(period)


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

def control_request(path, request):
    """Send one request to the running daemon and return its reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        try:
            sock.connect(path)
        except OSError as exc:
            raise SystemExit('anycast-healthcheck: cannot reach the daemon at %s (%s): is anycast-healthcheck.service running?'
                             % (path, exc.strerror or exc)) from exc
        sock.sendall((json.dumps(request) + '\n').encode('utf-8'))
        data = b''
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data.decode('utf-8'))


def _use_pidfd_child_watcher():
    # Python < 3.12 reaps children with a thread per child by default; pidfd needs none.
    if sys.version_info < (3, 12) and hasattr(os, 'pidfd_open'):
        try:
            os.close(os.pidfd_open(os.getpid()))
        except OSError:
            return
        import warnings  # pylint: disable=import-outside-toplevel
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', DeprecationWarning)
            asyncio.set_child_watcher(asyncio.PidfdChildWatcher())


def main(argv=None):
    """Entry point."""
    parser = argparse.ArgumentParser(prog='anycast-healthcheck', description=__doc__.split('\n', 1)[0])
    parser.add_argument('--config', default='/etc/anycast-healthcheck/config.json', help='JSON configuration file')
    sub = parser.add_subparsers(dest='command', required=True)
    sub.add_parser('run', help='run the daemon (systemd ExecStart)')
    check = sub.add_parser('check-config', help='validate a configuration file and exit (the role uses it as validate:)')
    check.add_argument('file', nargs='?', help='file to check (default: --config)')
    sub.add_parser('withdraw-all', help='write every prefix withdrawn and reconfigure BIRD (systemd ExecStopPost)')
    for name, text in (('drain', 'de-prefer (prepend), then withdraw after drain_withdraw_after'), ('undrain', 'end a drain')):
        cmd = sub.add_parser(name, help=text + '; all prefixes when none is given')
        cmd.add_argument('prefix', nargs='?')
    sub.add_parser('status', help="show the daemon's view of every prefix (JSON)")
    args = parser.parse_args(argv)

    try:
        config = load_config(args.file if args.command == 'check-config' and args.file else args.config)
    except ConfigError as exc:
        print('anycast-healthcheck: invalid configuration: %s' % exc, file=sys.stderr)
        if args.command != 'withdraw-all':
            return 2
        # Fail closed even with a broken configuration: withdraw with the paths it names, or the defaults.
        config = fallback_paths(args.config)
    if args.command == 'check-config':
        print('configuration OK: %d prefix(es)' % len(config['prefixes']))
        return 0
    if args.command == 'withdraw-all':
        text = render_state(read_text(config['withdrawn_file']), {s['prefix']: 0 for s in config['prefixes']})
        atomic_write(config['state_file'], text)
        try:
            asyncio.run(bird_configure(config['bird_socket']))
        except BirdError as exc:
            # BIRD not running announces nothing anyway; its ExecStartPre keeps it so.
            print('anycast-healthcheck: state file withdrawn; %s' % exc, file=sys.stderr)
        return 0
    if args.command in ('drain', 'undrain', 'status'):
        prefix = getattr(args, 'prefix', None)
        if prefix and '/' not in prefix:
            prefix += '/32'
        reply = control_request(config['control_socket'], {'command': args.command, 'prefix': prefix})
        print(json.dumps(reply, indent=2))
        return 0 if reply.get('ok') else 1
    _use_pidfd_child_watcher()
    asyncio.run(Daemon(config, args.config).run())
    return 0


if __name__ == '__main__':
    sys.exit(main())
