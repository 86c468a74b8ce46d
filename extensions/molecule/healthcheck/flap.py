"""Flap the application backend and count the announcements Route Server-like BIRD speakers see.

Used by the healthcheck scenario's tasks/flap.yml (on the controller):

    flap.py --socket SOCK [--also-socket SOCK2] --prefix P --pidfile PIDFILE --cycles N --down S --up S
            [--back-timeout S] [--at-end JSON_ARGV ...] -- START_ARGV...

Cycle i (from 0) SIGKILLs the backend's process group (PIDFILE, a lab service's) at i x (down + up) s and
starts it again (START_ARGV, which returns once the backend serves) `down` s later. After the last cycle the
backend stays up. The speakers are polled every 10 ms over one connection each; an announcement is the prefix
absent, then present. Each --at-end command (a JSON list) runs once when the last cycle's time is over, its
output kept (the checker's status while it holds the prefix down). Then the script waits until every speaker has
the prefix again.

Prints one JSON object (times in s from the first kill): announcements and announced_at per speaker within the
cycles' time, gone_at (the first withdraw) per speaker, started (when each start returned), back_seconds (from
the last start's return until every speaker had the prefix), at_end (the outputs); exits 1 when a start failed
or the prefix did not come back within --back-timeout.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time

from measure import POLL, BirdCli


def main():
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--socket', required=True, help="a speaker's BIRD control socket")
    parser.add_argument('--also-socket', action='append', default=[], help='another speaker')
    parser.add_argument('--prefix', required=True)
    parser.add_argument('--pidfile', required=True, help="the backend's pid file (a lab service)")
    parser.add_argument('--cycles', type=int, required=True)
    parser.add_argument('--down', type=float, required=True, help='seconds from a kill to the next start')
    parser.add_argument('--up', type=float, required=True, help='seconds from a start to the next kill')
    parser.add_argument('--back-timeout', type=float, default=30.0)
    parser.add_argument('--at-end', action='append', default=[], type=json.loads, help='a command (JSON list) run after the cycles')
    argv = sys.argv[1:]
    split = argv.index('--')
    args, start_argv = parser.parse_args(argv[:split]), argv[split + 1:]

    names = [args.socket] + args.also_socket
    speakers = {os.path.basename(name).split('.')[0]: BirdCli(name) for name in names}
    present = {name: bird.route(args.prefix) is not None for name, bird in speakers.items()}
    result = {'prefix': args.prefix, 'cycles': args.cycles, 'down': args.down, 'up': args.up, 'ok': False,
              'announcements': {name: 0 for name in speakers}, 'announced_at': {name: [] for name in speakers},
              'gone_at': {name: None for name in speakers}, 'started': [], 'at_end': []}
    period = args.down + args.up
    flapping = args.cycles * period  # the backend's last start is at flapping - up
    t0 = time.monotonic()
    events = [(i * period, 'kill') for i in range(args.cycles)] + [(i * period + args.down, 'start') for i in range(args.cycles)]
    events.sort()
    starting = None
    while True:
        now = time.monotonic() - t0
        if starting is None and events and events[0][0] <= now:
            _when, what = events.pop(0)
            if what == 'kill':
                with open(args.pidfile, encoding='utf-8') as handle:
                    os.killpg(int(handle.read().split()[0]), signal.SIGKILL)
            else:
                starting = subprocess.Popen(start_argv, stdout=subprocess.DEVNULL)  # pylint: disable=consider-using-with
        if starting is not None and starting.poll() is not None:
            if starting.returncode != 0:
                result['error'] = 'the backend did not start (exit status %d)' % starting.returncode
                break
            result['started'].append(round(now, 3))
            starting = None
        for name, bird in speakers.items():
            there = bird.route(args.prefix) is not None
            if there and not present[name] and now < flapping:
                result['announcements'][name] += 1
                result['announced_at'][name].append(round(now, 3))
            if not there and result['gone_at'][name] is None:
                result['gone_at'][name] = round(now, 3)
            present[name] = there
        if not events and starting is None and now >= flapping and len(result['at_end']) < len(args.at_end):
            for command in args.at_end:
                proc = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False, timeout=30)
                result['at_end'].append(proc.stdout)
            continue  # a poll after the commands before the prefix may count as back
        gone_everywhere = all(when is not None for when in result['gone_at'].values())
        if not events and starting is None and len(result['at_end']) == len(args.at_end) and gone_everywhere and all(present.values()):
            result.update(ok=True, back_seconds=round(now - result['started'][-1], 3))
            break
        if result['started'] and now > result['started'][-1] + args.back_timeout and not events:
            result['error'] = 'not back at every speaker %s s after the last start' % args.back_timeout
            break
        time.sleep(POLL)
    result['seconds'] = round(time.monotonic() - t0, 3)
    print(json.dumps(result))
    return 0 if result['ok'] else 1


if __name__ == '__main__':
    sys.exit(main())
