# Copyright: anycast.nva contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Command line: run, run-commands, check-config, withdraw-all, drain, undrain, status."""

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys

from . import __doc__ as PACKAGE_DOC
from .announce import BirdError, atomic_write, bird_configure, bird_running, bird_view, disable_sessions, render_state
from .announcer import record_failsafe
from .commands import serve as serve_commands
from .config import ConfigError, fallback_paths, load_config
from .daemon import Daemon


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


def withdraw_all(config):
    """systemd ExecStopPost: write every prefix withdrawn and reconfigure BIRD (fail closed)."""
    atomic_write(config['state_file'], render_state({}))
    try:
        asyncio.run(bird_configure(config['bird_socket']))
    except BirdError as exc:
        # BIRD not running announces nothing anyway; its ExecStartPre keeps it so. The failsafe step handles the rest.
        print('anycast-healthcheck: state file withdrawn; %s' % exc, file=sys.stderr)
    return 0


def stop_bird(config, why):
    """The last resort when BIRD cannot be told over its socket: stop it, and count it."""
    print('anycast-healthcheck: last resort: %s: stopping BIRD' % why, file=sys.stderr)
    subprocess.run(['systemctl', 'stop', 'bird.service'], check=False)
    record_failsafe(config['failsafe_file'], 'stop_bird')
    return 0


def failsafe(config):
    """systemd ExecStopPost as root, after withdraw-all: make sure BIRD announces nothing.

    BIRD still announcing (it refused the withdraw): its BGP sessions are disabled. BIRD
    running but its control socket silent: BIRD is stopped. Either is counted in the
    failsafe file, which the next daemon exposes and clears once BIRD obeys again.
    """
    prefixes = [spec['prefix'] for spec in config['prefixes']]
    try:
        view = asyncio.run(bird_view(config['bird_socket'], prefixes, timeout=5.0))
    except BirdError as exc:
        return stop_bird(config, 'BIRD runs but its control socket does not answer (%s)' % exc) if bird_running() else 0
    announcing = [p for p, value in view['values'].items() if value] + [p for p, sessions in view['exported'].items() if sessions]
    if announcing:
        try:
            names = asyncio.run(disable_sessions(config['bird_socket']))
        except BirdError as exc:
            return stop_bird(config, 'disabling the BGP sessions failed (%s)' % exc)
        print('anycast-healthcheck: last resort: BIRD still announced %s after the withdraw: sessions %s disabled'
              % (', '.join(sorted(set(announcing))), ', '.join(names)), file=sys.stderr)
        record_failsafe(config['failsafe_file'], 'disable_sessions', names)
    return 0


def main(argv=None):
    """Entry point."""
    parser = argparse.ArgumentParser(prog='anycast-healthcheck', description=PACKAGE_DOC.split('\n', 1)[0])
    parser.add_argument('--config', default='/etc/anycast-healthcheck/config.json', help='JSON configuration file')
    sub = parser.add_subparsers(dest='command', required=True)
    sub.add_parser('run', help='run the daemon (systemd ExecStart)')
    runner = sub.add_parser('run-commands', help="run the command checks the daemon asks for (the command runner's ExecStart)")
    runner.add_argument('--socket', required=True, help='Unix socket to listen on')
    runner.add_argument('--client-user', required=True, help="the daemon's user: the only one served")
    check = sub.add_parser('check-config', help='validate a configuration file and exit (the role uses it as validate:)')
    check.add_argument('file', nargs='?', help='file to check (default: --config)')
    sub.add_parser('withdraw-all', help='write every prefix withdrawn and reconfigure BIRD (systemd ExecStopPost)')
    sub.add_parser('failsafe', help='as root after withdraw-all: disable BGP or stop BIRD if it still announces (ExecStopPost)')
    for name, text in (('drain', 'de-prefer (prepend), then withdraw after drain_withdraw_after'), ('undrain', 'end a drain')):
        cmd = sub.add_parser(name, help=text + '; all prefixes when none is given')
        cmd.add_argument('prefix', nargs='?')
        if name == 'drain':
            cmd.add_argument('--withdraw-after', type=float, metavar='SECONDS',
                             help="withdraw after SECONDS instead of the prefixes' drain_withdraw_after")
    sub.add_parser('status', help="show every prefix: the checker's decision and what BIRD exports (JSON)")
    args = parser.parse_args(argv)
    if args.command == 'run-commands':  # it reads no configuration: the daemon's can hold check headers
        _use_pidfd_child_watcher()
        return asyncio.run(serve_commands(args.socket, args.client_user))

    try:
        config = load_config(args.file if args.command == 'check-config' and args.file else args.config)
    except ConfigError as exc:
        print('anycast-healthcheck: invalid configuration: %s' % exc, file=sys.stderr)
        if args.command not in ('withdraw-all', 'failsafe'):
            return 2
        # Fail closed even with a broken configuration: withdraw with the paths it names, or the defaults.
        config = fallback_paths(args.config)
    if args.command == 'check-config':
        print('configuration OK: %d prefix(es)' % len(config['prefixes']))
        return 0
    if args.command == 'withdraw-all':
        return withdraw_all(config)
    if args.command == 'failsafe':
        return failsafe(config)
    if args.command in ('drain', 'undrain', 'status'):
        prefix = getattr(args, 'prefix', None)
        if prefix and '/' not in prefix:
            prefix += '/32'
        request = {'command': args.command, 'prefix': prefix}
        if getattr(args, 'withdraw_after', None) is not None:
            request['withdraw_after'] = args.withdraw_after
        reply = control_request(config['control_socket'], request)
        print(json.dumps(reply, indent=2))
        return 0 if reply.get('ok') else 1
    _use_pidfd_child_watcher()
    return asyncio.run(Daemon(config, args.config).run())
