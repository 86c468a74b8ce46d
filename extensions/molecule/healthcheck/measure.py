"""Run an action, then time what a Route Server-like BIRD speaker sees of an anycast prefix.

Used by the healthcheck scenario's verify.yml (on the controller). It polls the speaker's
control socket every 10 ms over one connection, so a withdraw or announcement is timed to
about 10 ms; the clock starts just before the action runs, so SSH latency of an action on
the NVA counts against the daemon (the figures are upper bounds).

    measure.py --socket SOCK [--also-socket SOCK2] --prefix P gone [--timeout S] -- ACTION...
    measure.py --socket SOCK --prefix P present [--path "65001 65001"] [--timeout S] -- ACTION...
    measure.py --socket SOCK --prefix P stays-gone --protocol nva1 [--hold S] -- ACTION...
    measure.py --socket SOCK --prefix P gone --kill-pidfile PIDFILE [--random-delay S]   # t0 is exact
    measure.py --socket SOCK [--also-socket SOCK2] --prefix P [--also-prefix P2] returns [--path "65001"] -- ACTION...

gone/present with --also-socket: the prefix must be gone (present) at every speaker; "seconds" is
when the last one got there, "each" when each did. "t0_unix" is the Unix time of t0 (the NVAs share
the clock), to compare with the times the health checker logs.

returns: every prefix must first disappear from every speaker (the action withdrew it), then come
back (with --path); "seconds" is when the last one came back, "gone_seconds" when the last one went.

Prints one JSON object; exits 1 when the expectation is not met.
"""

import argparse
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time

POLL = 0.01
FINAL = re.compile(r'^\d{4} ')


class BirdCli:
    """A persistent connection to a BIRD control socket."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(path)
        self.lines = self.sock.makefile('r', encoding='utf-8', errors='replace')
        self.lines.readline()  # greeting

    def ask(self, command):
        """Send one CLI command and return its reply lines."""
        self.sock.sendall(command.encode('ascii') + b'\n')
        reply = []
        while True:
            line = self.lines.readline()
            if not line:
                raise RuntimeError('BIRD closed the control socket')
            reply.append(line.rstrip('\n'))
            if FINAL.match(line):
                return reply

    def route(self, prefix):
        """The AS path of the prefix's best route ('' for an empty path), or None when absent."""
        reply = self.ask('show route %s all' % prefix)
        if not any(prefix in line.split('-', 1)[-1].split() for line in reply):
            return None
        for line in reply:
            if 'BGP.as_path:' in line:
                return line.split('BGP.as_path:', 1)[1].strip()
        return ''

    def established(self, protocol):
        """Whether the BGP session is Established."""
        return any('Established' in line for line in self.ask('show protocols %s' % protocol))


def main():
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--socket', required=True, help="the speaker's BIRD control socket")
    parser.add_argument('--prefix', required=True)
    parser.add_argument('mode', choices=['gone', 'present', 'stays-gone', 'returns'])
    parser.add_argument('--also-socket', action='append', default=[], help='another speaker to watch (gone, present, returns)')
    parser.add_argument('--also-prefix', action='append', default=[], help='another prefix to watch (returns)')
    parser.add_argument('--path', help='expected AS path (present)')
    parser.add_argument('--protocol', help='BGP protocol name of the NVA on the speaker (stays-gone)')
    parser.add_argument('--hold', type=float, default=3.0, help='seconds the prefix must stay absent once the session is up (stays-gone)')
    parser.add_argument('--timeout', type=float, default=15.0)
    parser.add_argument('--kill-pidfile', help="the action: SIGKILL the process group in a lab service's pid file")
    parser.add_argument('--random-delay', type=float, default=0.0,
                        help='wait a random 0-N s first, so that a failure falls at a random phase of the probe interval')
    parser.add_argument('--t0-from-action', action='store_true',
                        help='the action prints the Unix time at which it acts on its first line (an NVA shares the clock)')
    argv = sys.argv[1:]
    split = argv.index('--') if '--' in argv else len(argv)
    args = parser.parse_args(argv[:split])
    action = argv[split + 1:]  # after `--`: the action's argv (optional)

    if args.mode == 'returns':
        return returns(args, action)
    birds = [BirdCli(path) for path in [args.socket] + args.also_socket]
    bird = birds[0]
    time.sleep(random.uniform(0, args.random_delay))
    pid = None
    if args.kill_pidfile:
        with open(args.kill_pidfile, encoding='utf-8') as handle:
            pid = int(handle.read().split()[0])
    start, t0_unix = time.monotonic(), time.time()
    if pid:
        os.killpg(pid, signal.SIGKILL)  # a sudden death, at a known instant
    # The action runs while we poll, so an event that happens before it returns is seen in time.
    proc = subprocess.Popen(action, stdout=subprocess.PIPE, text=True) if action else None  # pylint: disable=consider-using-with
    result = {'mode': args.mode, 'prefix': args.prefix, 'ok': False}
    seen = None
    each = {}  # speaker -> when it first met the expectation (gone, present)
    established_at = None
    deadline = start + args.timeout
    while time.monotonic() < deadline:
        paths = [speaker.route(args.prefix) for speaker in birds]
        path = paths[0]
        now = time.monotonic()
        if proc and proc.poll() is not None:
            output = proc.stdout.read()
            if proc.returncode != 0:
                result.update(error='action failed with exit status %d' % proc.returncode)
                break
            if args.t0_from_action:
                # Start the clock when the action happened on the NVA, not when SSH began.
                t0_unix = float(output.split()[0])
                start = now - (time.time() - t0_unix)
            result['action_seconds'] = round(now - start, 3)
            proc = None
        for name, got in zip([args.socket] + args.also_socket, paths):
            if name not in each and args.mode == 'gone' and got is None:
                each[name] = now
            if name not in each and args.mode == 'present' and got is not None and (args.path is None or got == args.path):
                each[name] = now
        if seen is None and args.mode in ('gone', 'present') and len(each) == len(birds):
            seen = (max(each.values()), path)
        if args.mode == 'stays-gone' and proc is None:
            if path is not None:
                result.update(seconds=round(now - start, 3), as_path=path, error='announced while it must not be')
                break
            if established_at is None and bird.established(args.protocol):
                established_at = now
                result['session_up_after'] = round(now - start, 3)
            if established_at is not None and now - established_at >= args.hold:
                seen = (now, path)
        if seen and proc is None:
            result.update(ok=True, seconds=round(seen[0] - start, 3), as_path=seen[1])
            break
        time.sleep(POLL)
    else:
        result.update(error='timeout after %ss' % args.timeout, last_as_path=bird.route(args.prefix))
    result['t0_unix'] = round(t0_unix, 3)
    if args.also_socket:
        result['each'] = {os.path.basename(name): round(each[name] - start, 3) if name in each else None
                          for name in [args.socket] + args.also_socket}
    print(json.dumps(result))
    return 0 if result['ok'] else 1


def returns(args, action):
    """Mode `returns`: each (speaker, prefix) must go, then come back; one poll of all every POLL."""
    speakers = [(path, BirdCli(path)) for path in [args.socket] + args.also_socket]
    watched = {(path, prefix): {} for path, _bird in speakers for prefix in [args.prefix] + args.also_prefix}
    start = time.monotonic()
    proc = subprocess.Popen(action, stdout=subprocess.PIPE, text=True) if action else None  # pylint: disable=consider-using-with
    result = {'mode': args.mode, 'prefix': args.prefix, 'ok': False}
    deadline = start + args.timeout
    while time.monotonic() < deadline:
        for path, bird in speakers:
            for prefix in [args.prefix] + args.also_prefix:
                seen, as_path, now = watched[(path, prefix)], bird.route(prefix), time.monotonic()
                if 'gone' not in seen and as_path is None:
                    seen['gone'] = now
                if 'gone' in seen and 'back' not in seen and as_path is not None and (args.path is None or as_path == args.path):
                    seen['back'], seen['as_path'] = now, as_path
        now = time.monotonic()
        if proc and proc.poll() is not None:
            output = proc.stdout.read()
            if proc.returncode != 0:
                result.update(error='action failed with exit status %d' % proc.returncode)
                break
            if args.t0_from_action:
                start = now - (time.time() - float(output.split()[0]))
            result['action_seconds'] = round(now - start, 3)
            proc = None
        if proc is None and all('back' in seen for seen in watched.values()):
            result.update(ok=True, seconds=round(max(seen['back'] for seen in watched.values()) - start, 3),
                          gone_seconds=round(max(seen['gone'] for seen in watched.values()) - start, 3),
                          as_path=sorted({seen['as_path'] for seen in watched.values()}))
            break
        time.sleep(POLL)
    else:
        never_gone = ['%s %s' % (os.path.basename(path), prefix) for (path, prefix), seen in watched.items() if 'gone' not in seen]
        result.update(error='timeout after %ss' % args.timeout, never_gone=never_gone,
                      not_back=['%s %s' % (os.path.basename(path), prefix) for (path, prefix), seen in watched.items() if 'back' not in seen])
    result['watched'] = {'%s %s' % (os.path.basename(path), prefix): {k: round(v - start, 3) if k != 'as_path' else v for k, v in seen.items()}
                         for (path, prefix), seen in watched.items()}
    print(json.dumps(result))
    return 0 if result['ok'] else 1


if __name__ == '__main__':
    sys.exit(main())
