# Copyright: anycast.nva contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""NVA self-checks: what every prefix of this NVA needs whatever its application.

NAT table loaded, IP forwarding on, the conntrack table below its headroom, a BGP session to a
Route Server instance Established, the state sync relay and conntrackd running (where sync is
configured). Read without privileges: /proc, BIRD's control socket (the announcer's read), the
status file the root watcher writes for the NAT table, `systemctl is-active`. While one fails,
every prefix is withdrawn (fail closed); the daemon then needs `rise` passing probes again.
"""

import asyncio
import os
import time

IP_FORWARD = '/proc/sys/net/ipv4/ip_forward'
# The kernel's connection tracking table: entries in use and the table's size (per network namespace).
CONNTRACK_DIR = '/proc/sys/net/netfilter'
# The NAT watcher (anycast-healthcheck-nat.service, root) rewrites its status file every second.
NAT_STATUS_MAX_AGE = 5.0


def read_conntrack(directory=CONNTRACK_DIR):
    """(entries, limit) of the conntrack table, or None when they cannot be read (nf_conntrack not loaded)."""
    try:
        with open(os.path.join(directory, 'nf_conntrack_count'), encoding='ascii') as count, \
                open(os.path.join(directory, 'nf_conntrack_max'), encoding='ascii') as limit:
            return int(count.read()), int(limit.read())
    except (OSError, ValueError):
        return None


def _read(path):
    try:
        with open(path, encoding='ascii') as handle:
            return handle.read().strip()
    except (OSError, ValueError):
        return None


def check_ip_forward(_conf, path=IP_FORWARD):
    """IPv4 forwarding on."""
    value = _read(path)
    return value == '1', 'net.ipv4.ip_forward = %s' % (value if value is not None else 'unreadable')


def check_conntrack(conf, directory=CONNTRACK_DIR):
    """The conntrack table keeps `conntrack_headroom` percent of its size free."""
    table = read_conntrack(directory)
    if table is None:
        return False, 'cannot read nf_conntrack_count and nf_conntrack_max'
    count, limit = table
    used = 100.0 * count / limit if limit else 100.0
    return used < 100 - conf['conntrack_headroom'], '%d of %d entries (%.1f%% used, headroom %s%%)' % (
        count, limit, used, conf['conntrack_headroom'])


def check_nat_table(conf, now=None):
    """The NAT table is loaded, as the root watcher last saw it (a stale status counts as failed)."""
    path = conf['nat_status_file']
    try:
        age = (time.time() if now is None else now) - os.stat(path).st_mtime
    except OSError:
        return False, '%s missing: is anycast-healthcheck-nat.service running?' % path
    status = _read(path) or ''
    if age > NAT_STATUS_MAX_AGE:
        return False, '%s not rewritten for %.0f s: is anycast-healthcheck-nat.service running?' % (path, age)
    return status == 'present', status


def check_bgp(_conf, view, disabled=()):
    """At least one BGP session to a Route Server instance Established (as the announcer last read BIRD)."""
    if disabled:
        # The last resort holds them down itself (its own withdraw): not a fault of the NVA.
        return True, 'sessions held down by the last resort: %s' % ', '.join(disabled)
    if view is None:
        return False, "BIRD's control socket does not answer"
    up = sorted(name for name, established in view['sessions'].items() if established)
    if up:
        return True, 'Established: %s' % ', '.join(up)
    return False, 'no BGP session Established (%s)' % (', '.join(sorted(view['sessions'])) or 'none configured')


async def check_sync(conf, timeout=2.0):
    """The sync relay and conntrackd units are active (`systemctl is-active`, unprivileged)."""
    try:
        proc = await asyncio.create_subprocess_exec(
            'systemctl', 'is-active', *conf['sync_units'], stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    except OSError as exc:
        return False, 'systemctl: %s' % exc
    try:
        out, _err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        return False, 'systemctl is-active did not answer within %s s' % timeout
    states = out.decode('ascii', 'replace').split()
    detail = ', '.join('%s %s' % pair for pair in zip(conf['sync_units'], states))
    return proc.returncode == 0 and states == ['active'] * len(conf['sync_units']), detail


class SelfChecks:
    """The enabled self-checks and their last results; `ok` is True while every one passes.

    Before the first run `ok` is False: nothing is announced before the NVA was checked. Made again on a
    reload (`previous`), it keeps the results; a check enabled by the reload counts from its first run.
    """

    NAMES = ('nat_table', 'ip_forward', 'conntrack', 'bgp', 'sync')

    def __init__(self, conf, previous=None):
        self.conf = conf
        self.enabled = [name for name in self.NAMES if conf[name]]
        old = previous.results if previous else {}
        self.results = {name: old[name] for name in self.enabled if name in old}
        self.ok = previous is not None and all(result['ok'] for result in self.results.values())

    async def run(self, view, disabled=()):
        """Run every enabled check; return the names whose result changed (their new results in `results`)."""
        now = time.time()
        verdicts = {}
        for name in self.enabled:
            if name == 'bgp' and view is None and name in self.results:
                # BIRD's socket silent: the sessions are unknown, the verdict stays. The withdraw deadline and
                # the last resort deal with a BIRD that cannot be told (before a first answer: failed).
                continue
            if name == 'bgp':
                verdicts[name] = check_bgp(self.conf, view, disabled)
            elif name == 'sync':
                verdicts[name] = await check_sync(self.conf)
            else:
                verdicts[name] = CHECKS[name](self.conf)
        changed = []
        for name, (ok, detail) in verdicts.items():
            old = self.results.get(name)
            if old is None or old['ok'] != ok:
                changed.append(name)
                self.results[name] = {'ok': ok, 'detail': detail, 'since': round(now, 3)}
            else:
                old['detail'] = detail
        self.ok = all(result['ok'] for result in self.results.values())
        return changed


CHECKS = {'nat_table': check_nat_table, 'ip_forward': check_ip_forward, 'conntrack': check_conntrack}
