# Copyright: anycast.nva contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Configuration: defaults and validation (also run by `check-config`, the role's `validate:`)."""

import ipaddress
import json
import re
import urllib.parse

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
    # Flap damping (state.Damping): more than flap_threshold withdraw->announce cycles in flap_window
    # seconds hold the next announcement down flap_hold seconds, doubled per further flap, at most
    # flap_hold_max; 0: off.
    'flap_threshold': 5,
    'flap_window': 60.0,
    'flap_hold': 10.0,
    'flap_hold_max': 300.0,
    # A keep-alive HTTP check probes on a fresh connection at least this often (0: off), so that a
    # failure of new connections only is caught (scheduler.Runner.fresh_due).
    'fresh_interval': 2.0,
    # A prefix with `backends` is announced while at least this many of them pass `backend_checks`.
    'min_healthy': 1,
}
GLOBAL_DEFAULTS = {
    'bird_socket': '/run/bird/bird.ctl',
    'state_file': '/run/anycast-nva/announce.conf',
    'failsafe_file': '/var/lib/anycast-healthcheck/failsafe.json',
    'control_socket': '/run/anycast-healthcheck/control.sock',
    # The command runner (commands.py) that runs command checks under an identity of their own.
    'command_runner_socket': '/run/anycast-healthcheck-commands/runner.sock',
    'drain_file': '/var/lib/anycast-healthcheck/drain.json',
    'metrics_listen': '127.0.0.1:9469',
    'metrics_textfile': '',
    'metrics_textfile_interval': 10.0,
    # Read BIRD back and repair any difference this often; the bound is 2 s.
    'reconcile_interval': 1.0,
    # A withdraw BIRD has not applied after this long triggers the last resort.
    'withdraw_deadline': 5.0,
    # NVAs configured in this NVA's region, shown as a metric for the alert on fewer NVAs announcing (0: not shown).
    'region_nvas': 0,
    # Per prefix with `backends`, which backends are healthy: the nat role's backend updater reads it
    # and sends new flows to those only (rewritten every reconcile_interval and at every change).
    'backend_health_file': '/run/anycast-healthcheck/backends.json',
}
# NVA self-checks (selfcheck.py): one failing withdraws every prefix. sync: only where state sync is configured.
SELF_CHECK_DEFAULTS = {
    'nat_table': True,
    'ip_forward': True,
    'conntrack': True,
    'conntrack_headroom': 10,  # percent of nf_conntrack_max that must stay free
    'bgp': True,
    'sync': False,
    'nat_status_file': '/run/anycast-healthcheck-nat/status',
    'sync_units': ['anycast-sync-relay.service', 'conntrackd.service'],
}
CHECK_KEYS = {
    'tcp': {'type', 'name', 'host', 'port'},
    'http': {'type', 'name', 'url', 'expect_status', 'body_match', 'body_regex', 'tls_verify', 'ca_file', 'server_name', 'keepalive'},
    'command': {'type', 'name', 'argv'},
}
ON_FAILURE = ('withdraw', 'prepend')


class ConfigError(ValueError):
    """A configuration value is wrong; the message starts with the field's path."""


def _fail(path, message, value=None):
    shown = '' if value is None else ' (got %s)' % json.dumps(value)
    raise ConfigError('%s: %s%s' % (path, message, shown))


def shown_url(url):
    """A URL as logs, metric labels and errors show it: without user info, query or fragment (they can hold secrets)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition('@')[2]
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, '', '')) + ('?...' if parts.query else '')


def _number(obj, key, path, low, high, integer=False):
    value = obj[key]
    kind = int if integer else (int, float)
    # bool is an int in Python: refuse it explicitly so `rise: true` is an error.
    if isinstance(value, bool) or not isinstance(value, kind) or not low <= value <= high:
        what = 'an integer' if integer else 'a number'
        _fail('%s.%s' % (path, key) if path else key, 'must be %s between %s and %s' % (what, low, high), value)
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
        _fail(path + '.url', 'must be http://IP[:PORT]/PATH or https://... with a port between 1 and 65535', shown_url(url))
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
    check.setdefault('name', shown_url(url))


def _check_command(check, path):
    argv = check.get('argv')
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) and a for a in argv):
        _fail(path + '.argv', 'must be a non-empty list of non-empty strings (no shell)')  # not shown: it can hold a secret
    if not argv[0].startswith('/'):
        _fail(path + '.argv', 'the program must be an absolute path', argv[0])
    check.setdefault('name', argv[0])


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


BACKEND = '{backend}'


def _expand(value, backend):
    """A backend check template with {backend} replaced by the backend's address (strings and lists of strings)."""
    if isinstance(value, str):
        return value.replace(BACKEND, backend)
    if isinstance(value, list):
        return [_expand(v, backend) for v in value]
    if isinstance(value, dict):
        return {k: _expand(v, backend) for k, v in value.items()}
    return value


def send_commands_to(runner_socket, checks):
    """Point the command checks among `checks` at the command runner (commands.py): never run by the daemon."""
    for check in checks:
        if check['type'] == 'command':
            check['runner_socket'] = runner_socket


def backend_checks(spec, runner_socket=None, path=None):
    """{backend: its checks}: a prefix's `backend_checks` with {backend} replaced by each of its `backends`,
    validated (defaults added); errors name the template's field (`path`)."""
    result = {}
    for backend in spec.get('backends', ()):
        checks = result[backend] = [_expand(c, backend) for c in spec['backend_checks']]
        for i, check in enumerate(checks):
            validate_check(check, '%s.backend_checks[%d]' % (path or 'backend_checks', i))
        send_commands_to(runner_socket, checks)
    return result


def _validate_backends(spec, path):
    """`backends`, `backend_checks` and `min_healthy` of a prefix (per-backend health, the nat role's services)."""
    if 'backends' not in spec:
        if 'backend_checks' in spec:
            _fail(path + '.backend_checks', 'needs backends (the addresses to put in place of {backend})')
        return
    backends = spec['backends']
    if not isinstance(backends, list) or not backends:
        _fail(path + '.backends', "must be a non-empty list of the service's backend addresses (IPv4)", backends)
    for i, backend in enumerate(backends):
        try:
            ipaddress.IPv4Address(backend)
        except (ValueError, TypeError):
            _fail('%s.backends[%d]' % (path, i), 'must be an IPv4 address', backend)
    if len(set(backends)) != len(backends):
        _fail(path + '.backends', 'lists a backend twice', backends)
    templates = spec.get('backend_checks')
    if not isinstance(templates, list) or not templates:
        _fail(path + '.backend_checks', 'must be a non-empty list of checks, with {backend} where the address goes '
              "(for example {type: http, url: 'http://{backend}:8080/health'})", templates)
    for i, template in enumerate(templates):
        if BACKEND not in json.dumps(template):
            _fail('%s.backend_checks[%d]' % (path, i), 'must contain {backend} (every backend would be probed the same way)')
    backend_checks(spec, path=path)
    _number(spec, 'min_healthy', path, 1, len(backends), integer=True)


def validate_prefix(spec, path):
    """Validate one prefix entry in place (adding defaults) and return it."""
    if not isinstance(spec, dict):
        _fail(path, 'must be a mapping', spec)
    _unknown_keys(spec, set(PREFIX_DEFAULTS) | {'prefix', 'checks', 'backends', 'backend_checks'}, path)
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
    _number(spec, 'fresh_interval', path, 0, 3600)
    _number(spec, 'flap_threshold', path, 0, 1000, integer=True)
    _number(spec, 'flap_window', path, 1, 86400)
    _number(spec, 'flap_hold', path, 1, 86400)
    _number(spec, 'flap_hold_max', path, 1, 86400)
    if spec['flap_hold_max'] < spec['flap_hold']:
        _fail(path + '.flap_hold_max', 'must not be less than flap_hold (%s)' % spec['flap_hold'], spec['flap_hold_max'])
    if spec['on_failure'] not in ON_FAILURE:
        _fail(path + '.on_failure', 'must be one of %s' % ', '.join(ON_FAILURE), spec['on_failure'])
    _number(spec, 'min_healthy', path, 1, 1000, integer=True)
    _validate_backends(spec, path)
    # With backends, the prefix's own checks are optional (all must pass too when given).
    checks = spec.setdefault('checks', []) if 'backends' in spec else spec.get('checks')
    if not isinstance(checks, list) or not (checks or 'backends' in spec):
        _fail(path + '.checks', 'must be a non-empty list of checks (all must pass), or give backends and backend_checks', checks)
    for i, check in enumerate(checks):
        validate_check(check, '%s.checks[%d]' % (path, i))
    names = [c['name'] for c in checks]
    if len(set(names)) != len(names):
        _fail(path + '.checks', 'check names must be unique within a prefix: give each a name (the default name leaves '
              "out a URL's query and a command's arguments, which can hold secrets)", names)
    return spec


def validate_self_checks(config):
    """Validate config['self_checks'] in place (adding defaults)."""
    checks = config.setdefault('self_checks', {})
    if not isinstance(checks, dict):
        _fail('self_checks', 'must be a mapping', checks)
    _unknown_keys(checks, SELF_CHECK_DEFAULTS, 'self_checks')
    for key, value in SELF_CHECK_DEFAULTS.items():
        checks.setdefault(key, json.loads(json.dumps(value)))
    for key in ('nat_table', 'ip_forward', 'conntrack', 'bgp', 'sync'):
        if not isinstance(checks[key], bool):
            _fail('self_checks.' + key, 'must be true or false', checks[key])
    _number(checks, 'conntrack_headroom', 'self_checks', 1, 99, integer=True)
    if not isinstance(checks['nat_status_file'], str) or not checks['nat_status_file'].startswith('/'):
        _fail('self_checks.nat_status_file', 'must be an absolute path', checks['nat_status_file'])
    units = checks['sync_units']
    if not isinstance(units, list) or not units or not all(isinstance(u, str) and u for u in units):
        _fail('self_checks.sync_units', 'must be a non-empty list of systemd unit names', units)


def validate_config(raw):
    """Validate a whole configuration (a dict from JSON); return it with defaults filled in."""
    if not isinstance(raw, dict):
        _fail('config', 'must be a JSON object', None)
    config = json.loads(json.dumps(raw))  # deep copy: never change the caller's data
    _unknown_keys(config, set(GLOBAL_DEFAULTS) | {'prefixes', 'self_checks'}, 'config')
    validate_self_checks(config)
    for key, value in GLOBAL_DEFAULTS.items():
        config.setdefault(key, value)
    for key in ('bird_socket', 'state_file', 'failsafe_file', 'control_socket', 'command_runner_socket', 'drain_file',
                'backend_health_file'):
        if not isinstance(config[key], str) or not config[key].startswith('/'):
            _fail(key, 'must be an absolute path', config[key])
    if not isinstance(config['metrics_textfile'], str) or (config['metrics_textfile'] and not config['metrics_textfile'].startswith('/')):
        _fail('metrics_textfile', 'must be an absolute path or empty (off)', config['metrics_textfile'])
    _number(config, 'metrics_textfile_interval', '', 1, 3600)
    _number(config, 'reconcile_interval', '', 0.1, 2)
    _number(config, 'withdraw_deadline', '', 1, 60)
    # Route Server peers with at most 8 NVAs.
    _number(config, 'region_nvas', '', 0, 8, integer=True)
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
        send_commands_to(config['command_runner_socket'], spec['checks'])
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
    for key in ('bird_socket', 'state_file', 'failsafe_file'):
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
