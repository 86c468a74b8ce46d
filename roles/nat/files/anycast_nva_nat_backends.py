# Copyright: anycast.nva contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""anycast.nva NAT backend updater: new flows go only to the backends the health checker finds healthy.

Runs as root with CAP_NET_ADMIN only (anycast-nva-nat-backends.service). Each service of the nat
role with several backends picks a flow's backend through a named map in table ip anycast_nat:
`jhash ip saddr . sport mod N*K seed S map @slots_<service>_<version>`, K slots per backend.
With every backend healthy, slot s holds backends[s // K]: the same choice as the plain
`mod N` hash (the kernel scales the hash, it does not take a remainder), the same on every NVA.

This loop reads two files:
- the allowed file (root-owned, written by the nat role): per service its anycast IP, backends,
  map name and slots per backend. Nothing else can ever be written into a map;
- the health file (written by the unprivileged health checker): per anycast IP, per backend,
  true or false. It can only take backends out of a service, never add one.

It writes each map in one `nft -f -` transaction (flush and refill: a packet sees the old or the
new map, never a half). Conntrack keeps the backend of established flows, so only new flows
move. An unhealthy backend's slots are dealt round-robin to the healthy ones; the others keep
theirs, so flows of healthy backends keep their backend. When no backend of a service is healthy,
or the health file is missing, unreadable or older than STALE seconds (the checker stopped), the
map holds every configured backend: today's behaviour, never a blackhole.
"""

import argparse
import json
import os
import select
import signal
import subprocess
import sys
import time

STALE = 5.0      # seconds: the checker rewrites the health file every second
POLL = 0.1       # seconds between looks at the health file
REFRESH = 1.0    # seconds: the maps are written again even when nothing seems to have changed
MAX_BYTES = 1 << 20


def slots(backends, healthy, per_backend):
    """The map of one service: slot -> backend.

    Slot s belongs to backends[s // per_backend]. A healthy owner keeps it; the j-th slot of an
    unhealthy owner goes to healthy[j % len(healthy)]. No healthy backend: every owner keeps its slots.
    """
    alive = [b for b in backends if b in healthy]
    result = {}
    for s in range(len(backends) * per_backend):
        owner, j = backends[s // per_backend], s % per_backend
        result[s] = owner if owner in alive or not alive else alive[j % len(alive)]
    return result


def healthy_backends(service, health):
    """The backends of a service the health file does not report as unhealthy (unreported: healthy)."""
    reported = health.get(service['anycast_ip'], {}) if isinstance(health, dict) else {}
    if not isinstance(reported, dict):
        reported = {}
    return [b for b in service['backends'] if reported.get(b, True) is not False]


def read_health(path, now=None):
    """The health file's `prefixes` mapping, or None when missing, unreadable, invalid or stale."""
    now = time.time() if now is None else now
    try:
        with open(path, 'rb') as handle:
            age = now - os.fstat(handle.fileno()).st_mtime
            raw = handle.read(MAX_BYTES + 1)
        data = json.loads(raw.decode('utf-8'))
    except (OSError, ValueError):
        return None
    if len(raw) > MAX_BYTES or age > STALE or not isinstance(data, dict) or not isinstance(data.get('prefixes'), dict):
        return None
    return data['prefixes']


def load_allowed(path):
    """The nat role's services: {'table': ..., 'services': [{name, anycast_ip, backends, map, per_backend}]}."""
    with open(path, encoding='utf-8') as handle:
        allowed = json.load(handle)
    for service in allowed['services']:
        if not service['backends'] or int(service['per_backend']) < 1:
            raise ValueError('service %s: no backends or no slots' % service['name'])
    return allowed


def wanted(allowed, health):
    """{map name: {slot: backend}} for every service, from the health (None: all configured)."""
    result = {}
    for service in allowed['services']:
        healthy = service['backends'] if health is None else healthy_backends(service, health)
        result[service['map']] = slots(service['backends'], healthy, int(service['per_backend']))
    return result


def transaction(table, maps):
    """The nft script that replaces the elements of every map, as one transaction."""
    lines = []
    for name, elements in sorted(maps.items()):
        lines.append('flush map ip %s %s' % (table, name))
        lines.append('add element ip %s %s { %s }' % (
            table, name, ', '.join('%d : %s' % (s, b) for s, b in sorted(elements.items()))))
    return '\n'.join(lines) + '\n'


def summary(allowed, maps):
    """Per service, the backends new flows go to (for the journal)."""
    return {s['name']: sorted(set(maps[s['map']].values())) for s in allowed['services']}


class TableWatch:
    """`nft monitor new tables`: a line whenever a table is created. A reload of the NAT table (a role run,
    `systemctl reload nftables`) creates it anew with full maps; the maps are written again at once."""

    def __init__(self):
        self.proc = None

    def wait(self, seconds):
        """Sleep up to `seconds`; True when a table was created meanwhile. A watch that ended starts again
        (meanwhile the maps are still written every REFRESH seconds)."""
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen(['nft', 'monitor', 'new', 'tables'],  # pylint: disable=consider-using-with
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            time.sleep(seconds)
            return False
        ready, _w, _x = select.select([self.proc.stdout], [], [], seconds)
        if ready and not os.read(self.proc.stdout.fileno(), 65536):
            self.proc.wait()  # it ended: started again next time
        return bool(ready)

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()


def log(message, **fields):
    print(json.dumps(dict(fields, event=message), sort_keys=True), flush=True)


def run(allowed_path, health_path, watch):
    """Main loop: apply on every change of the wanted maps, when a table is created, and every REFRESH seconds."""
    allowed, allowed_mtime, applied, last_write, failed = None, None, None, 0.0, False
    created = True
    while True:
        now = time.time()
        try:
            mtime = os.stat(allowed_path).st_mtime_ns
            if mtime != allowed_mtime:
                allowed, allowed_mtime, failed = load_allowed(allowed_path), mtime, False
        except (OSError, ValueError, KeyError, TypeError) as exc:
            if allowed is None:
                log('allowed_file_unreadable', path=allowed_path, error=str(exc))
                time.sleep(1)
                continue
        maps = wanted(allowed, read_health(health_path, now))
        # After a failure, try again at the next refresh only (no nft storm while the table is gone).
        if (maps != applied and not failed) or created or now - last_write >= REFRESH:
            done = subprocess.run(['nft', '-f', '-'], input=transaction(allowed['table'], maps),
                                  capture_output=True, text=True, check=False)
            last_write = now
            if done.returncode == 0:
                if maps != applied or failed:
                    log('applied', services=summary(allowed, maps))
                applied, failed = maps, False
            elif not failed:
                # The table is reloading or its backends just changed (a new map name): next round.
                log('apply_failed', error=done.stderr.strip())
                failed = True
        created = watch.wait(POLL)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--allowed', required=True, help="the nat role's services (root-owned JSON)")
    parser.add_argument('--health', required=True, help="the health checker's backend health (JSON)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_args: sys.exit(0))
    watch = TableWatch()
    try:
        run(args.allowed, args.health, watch)
    except KeyboardInterrupt:
        return 0
    finally:
        watch.close()
    return 1


if __name__ == '__main__':
    sys.exit(main())
