# Copyright: anycast.nva contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Counters and gauges in the Prometheus text format."""

from .announcer import read_failsafe
from .selfcheck import CONNTRACK_DIR, read_conntrack
from .state import state_name

# Reasons a prefix is withdrawn (its value goes to 0): each prefix shows every one of them from
# the start, at 0, so that a rate over a fresh counter works. Another reason is shown once it happens.
WITHDRAW_REASONS = ('fall', 'self-check', 'drain', 'drain-timeout', 'reload', 'stop')


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
        self.bird_view = None        # what BIRD does, as the announcer last read it
        self.reconcile_repairs = 0
        self.failsafe_file = None    # the last-resort record (counts survive restarts)
        self.withdraws = {}          # (prefix, reason) -> withdraws
        self.flaps = {}              # prefix -> withdraw->announce cycles (flap damping counts them)
        self.region_nvas = 0         # NVAs configured in the region (0: not said)
        self.conntrack_dir = CONNTRACK_DIR
        self.self_checks = {}        # self-check name -> its last result (selfcheck.SelfChecks.results)

    def observe(self, prefix, results):
        """Record the results of one probe round."""
        for res in results:
            self.check_seconds[(prefix, res['name'])] = res['seconds']
            key = (prefix, res['name'], 'ok' if res['ok'] else 'fail')
            self.check_total[key] = self.check_total.get(key, 0) + 1

    def changed(self, prefix, now, value=None, reason=None):
        """Record a state change of a prefix to `value` (0: a withdraw, counted by `reason`)."""
        self.transitions[prefix] = self.transitions.get(prefix, 0) + 1
        self.last_change[prefix] = now
        if value == 0:
            key = (prefix, str(reason))
            self.withdraws[key] = self.withdraws.get(key, 0) + 1

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
        reasons = sorted(set(WITHDRAW_REASONS) | {r for _p, r in self.withdraws})
        family('withdraws_total', 'counter', 'Changes to withdrawn since the daemon started, by reason (the state_change log line\'s).',
               [(_labels(prefix=p, reason=r), self.withdraws.get((p, r), 0)) for p in machines for r in reasons])
        family('flaps_total', 'counter', 'Withdraw->announce cycles (health back after a fall) since the daemon started.',
               [(_labels(prefix=p), self.flaps.get(p, 0)) for p in machines])
        family('held_down', 'gauge', 'Flap damping holds the announcement of the prefix down (1) or not (0).',
               [(_labels(prefix=p), int(m.damping.held(now))) for p, m in machines.items()])
        family('held_down_until_timestamp_seconds', 'gauge', 'Unix time the hold-down of the prefix ends (0: not held down).',
               [(_labels(prefix=p), m.damping.held_until if m.damping.held(now) else 0) for p, m in machines.items()])
        family('drain_start_timestamp_seconds', 'gauge', 'Unix time the drain of the prefix began (0: not drained).',
               [(_labels(prefix=p), m.drained_at or 0) for p, m in machines.items()])
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
        view = self.bird_view or {'values': {}, 'exported': {}, 'sessions': {}}
        family('bird_up', 'gauge', "BIRD's control socket answered the last read (1) or not (0).",
               [('', int(self.bird_view is not None))])
        family('bird_exported', 'gauge', 'BIRD exports the prefix to at least one Route Server session (1) or not (0).',
               [(_labels(prefix=p), int(bool(view['exported'].get(p)))) for p in machines])
        family('bird_announce_value', 'gauge', "The prefix's anycast_state() as BIRD evaluates it (absent: unknown).",
               [(_labels(prefix=p), view['values'][p]) for p in machines if view['values'].get(p) is not None])
        family('bird_session_established', 'gauge', 'BGP session to a Route Server instance Established (1) or not (0).',
               [(_labels(session=name), int(up)) for name, up in sorted(view['sessions'].items())])
        family('reconcile_repairs_total', 'counter', "Differences between the checker's decision and BIRD found and repaired.",
               [('', self.reconcile_repairs)])
        counts = read_failsafe(self.failsafe_file)['counts'] if self.failsafe_file else {}
        family('last_resort_total', 'counter', 'Last resorts taken because BIRD did not apply a withdraw (all time).',
               [(_labels(action=a), counts.get(a, 0)) for a in ('disable_sessions', 'stop_bird')])
        if self.region_nvas:
            family('region_nvas', 'gauge', "NVAs configured in this NVA's region (healthcheck_region_nvas).",
                   [('', self.region_nvas)])
        family('self_check_ok', 'gauge', 'NVA self-check passing (1) or failing (0); one failing withdraws every prefix.',
               [(_labels(check=name), int(result['ok'])) for name, result in sorted(self.self_checks.items())])
        conntrack = read_conntrack(self.conntrack_dir)
        if conntrack:
            family('conntrack_entries', 'gauge', "Entries in the kernel's connection tracking table (nf_conntrack_count).",
                   [('', conntrack[0])])
            family('conntrack_entries_limit', 'gauge', "Size of the kernel's connection tracking table (nf_conntrack_max).",
                   [('', conntrack[1])])
        return '\n'.join(out) + '\n'
