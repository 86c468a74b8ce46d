# Copyright: anycast.nva contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Command line: run, check-config, withdraw-all, drain, undrain, status."""

import argparse
import asyncio
import json
import os
import socket
import sys

from . import __doc__ as PACKAGE_DOC
from .announce import BirdError, atomic_write, bird_configure, read_text, render_state
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


def main(argv=None):
    """Entry point."""
    parser = argparse.ArgumentParser(prog='anycast-healthcheck', description=PACKAGE_DOC.split('\n', 1)[0])
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
