"""Runs on the NVA: writes the health checker's backend health file as the checker would (its own
user and group, mode 0640), then reads the service's slot map every 10 ms until new flows go to
exactly the --expect backends; prints the seconds it took. --age makes the file that many seconds
old (a stopped checker); --remove deletes it; --reload reloads the NAT table first.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time


def backends(table, name):
    out = subprocess.run(['nft', '-j', 'list', 'map', 'ip', table, name], capture_output=True, text=True, check=True)
    (entry,) = [e['map'] for e in json.loads(out.stdout)['nftables'] if 'map' in e]
    return sorted({value for _slot, value in entry['elem']})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--health', required=True)
    parser.add_argument('--owner', required=True, help='user:group of the checker')
    parser.add_argument('--map', required=True)
    parser.add_argument('--table', default='anycast_nat')
    parser.add_argument('--write', help='the health as JSON: {anycast IP: {backend: true|false}}')
    parser.add_argument('--age', type=float, default=0.0)
    parser.add_argument('--remove', action='store_true')
    parser.add_argument('--reload', action='store_true', help='reload the NAT table (its maps come back full) first')
    parser.add_argument('--expect', nargs='+', required=True)
    parser.add_argument('--within', type=float, default=10.0)
    args = parser.parse_args()
    start = time.time()
    if args.reload:
        subprocess.run(['systemctl', 'reload', 'anycast-nva-nat.service'], check=True, capture_output=True)
    if args.remove:
        if os.path.exists(args.health):
            os.remove(args.health)
    elif args.write is not None:
        tmp = args.health + '.tmp'
        with open(tmp, 'w', encoding='utf-8') as handle:
            json.dump({'prefixes': json.loads(args.write)}, handle)
        user, group = args.owner.split(':')
        shutil.chown(tmp, user, group)
        os.chmod(tmp, 0o640)
        os.replace(tmp, args.health)
    if args.age:
        when = time.time() - args.age
        os.utime(args.health, (when, when))
    expect = sorted(args.expect)
    while True:
        seen = backends(args.table, args.map)
        if seen == expect:
            print('%.3f' % (time.time() - start))
            return 0
        if time.time() - start > args.within:
            print('after %.1f s new flows go to %s, not %s' % (args.within, seen, expect), file=sys.stderr)
            return 1
        time.sleep(0.01)


if __name__ == '__main__':
    sys.exit(main())
