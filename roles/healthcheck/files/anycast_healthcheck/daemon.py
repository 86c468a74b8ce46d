# Copyright: anycast.nva contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The daemon: runners, BIRD's state, the control socket and the metrics endpoint."""

import asyncio
import json
import os
import signal
import time

from .announce import atomic_write, read_text
from .announcer import Announcer, read_failsafe
from .config import ConfigError, backend_checks, load_config
from .endpoints import Endpoints, read_control_request, read_http_request
from .engine import probe_engine
from .metrics import Metrics
from .scheduler import Runner, Ticker
from .selfcheck import SelfChecks
from .state import Backends, Health, Prefix, health_key, state_name
from .util import log, sd_notify


class Daemon:
    """Owns the runners, writes BIRD's state, serves control and metrics."""

    def __init__(self, config, config_path=None):
        self.config = config
        self.config_path = config_path
        self.runners = {}   # health key -> Runner
        self.prefixes = {}  # prefix -> Prefix
        self.runner_of = {}  # prefix -> Runner of its own checks (none for a prefix with backends and no checks)
        self.backends = {}   # prefix with backends -> state.Backends
        self.backend_runners = {}  # (prefix, backend) -> Runner
        self.backend_health_written = None  # what the backend health file said last
        self.metrics = Metrics()
        self.announced = {}  # prefix -> value last pushed
        self.stopping = None
        self.exit_code = 0
        self.announcer = None
        self.endpoints = Endpoints({'control': self.handle_control, 'metrics': self.handle_metrics})
        self.timers = {}  # prefix -> the timer of its next change without a probe (a hold-down or drain ends)
        self.ticker = Ticker()
        self.engine = None
        self.self_checks = None  # the NVA's self-checks (selfcheck.SelfChecks), set by run() and reload()

    # -- decisions -------------------------------------------------------

    def round_done(self, prefixes, results, flip):
        """A runner's round is over: count its results for each of its prefixes, re-evaluate them on a flip.

        A backend's flip changes the backend health file at once; its prefix flips only when the count of
        healthy backends crosses min_healthy (state.Backends)."""
        if flip and self.backends:
            self.write_backend_health()
        for prefix in prefixes:
            self.metrics.observe(prefix, results)
            prefix_flip = self.backends[prefix].update() if flip and prefix in self.backends else flip
            if prefix_flip:
                self.flap_damping(prefix, prefix_flip)
                self.evaluate(prefix, prefix_flip, results)

    def write_backend_health(self):
        """The backend health file the nat role's updater reads: per anycast IP, per backend, up or not.

        Rewritten every reconcile_interval even when unchanged: the updater takes a file older than 5 s for
        a stopped checker (every backend gets new flows again)."""
        health = {prefix.split('/')[0]: {b: h.healthy for b, h in state.backends.items()}
                  for prefix, state in self.backends.items()}
        if health != self.backend_health_written:
            for ip, backends in health.items():
                before = (self.backend_health_written or {}).get(ip, {})
                for backend, up in backends.items():
                    if before.get(backend) != up:
                        log('backend', prefix=ip + '/32', backend=backend, healthy=up,
                            up=sum(backends.values()), of=len(backends))
        try:
            atomic_write(self.config['backend_health_file'], json.dumps({'prefixes': health}) + '\n', mode=0o640)
            self.backend_health_written = health
        except OSError as exc:
            log('backend_health_file_failed', path=self.config['backend_health_file'], error=str(exc))

    def flap_damping(self, prefix, flip):
        """Feed a health flip to the prefix's flap damping; count a flap, log a hold-down it starts."""
        damping = self.prefixes[prefix].damping
        hold = damping.flipped(flip, time.time())
        if hold is None:
            return
        self.metrics.flaps[prefix] = self.metrics.flaps.get(prefix, 0) + 1
        if hold:
            spec = damping.spec
            log('hold_down', prefix=prefix, seconds=hold, until=round(damping.held_until, 3),
                flaps=len(damping.flaps), window=spec['flap_window'], threshold=spec['flap_threshold'])

    def evaluate(self, prefix, reason, results=None):
        """Recompute a prefix's value; on change log one line, count it and push it to BIRD."""
        state = self.prefixes.get(prefix)
        new = state.value(time.time()) if state and not self.stopping.is_set() else 0
        old = self.announced.get(prefix, 0)
        if state:
            self.announced[prefix] = new
        else:
            self.announced.pop(prefix, None)
        self._arm_timer(prefix)
        if new == old:
            return
        self.metrics.changed(prefix, time.time(), new, reason)
        if results is None:
            results = self.runner_of[prefix].last_results if prefix in self.runner_of else []
        log('state_change', prefix=prefix, old=state_name(old), new=state_name(new), value=new, reason=reason, checks=results)
        if not self.stopping.is_set():
            self.announcer.push(self.announced)

    def _arm_timer(self, prefix):
        timer = self.timers.pop(prefix, None)
        if timer:
            timer.cancel()
        state = self.prefixes.get(prefix)
        change = state.next_change(time.time(), self.announced.get(prefix)) if state else None
        if change is not None:
            delay = max(0.0, change[0] - time.time())
            self.timers[prefix] = asyncio.get_running_loop().call_later(delay, self.evaluate, prefix, change[1])

    def request_stop(self, code=0):
        """End the daemon (withdrawing everything on the way out) with this exit code."""
        self.exit_code = code
        self.stopping.set()

    # -- NVA self-checks ---------------------------------------------------

    def use_self_checks(self, self_checks):
        """Make `self_checks` the ones the prefixes (installed next) and the metrics use."""
        self.self_checks = self_checks
        self.metrics.self_checks = self_checks.results

    async def _self_check_loop(self):
        """Every reconcile_interval: run the self-checks; when their verdict changes every prefix is
        re-evaluated (withdrawn while one fails) and its health counts from zero: `rise` passes to come back."""
        while True:
            was_ok = self.self_checks.ok
            disabled = read_failsafe(self.config['failsafe_file'])['disabled']
            for name in await self.self_checks.run(self.announcer.view, disabled):
                log('self_check', check=name, **self.self_checks.results[name])
            if self.self_checks.ok != was_ok:
                for runner in self.runners.values():
                    runner.health.restart()
                for backends in self.backends.values():
                    backends.update()
                for prefix in self.prefixes:
                    self.evaluate(prefix, 'self-check')
            if self.backends:
                self.write_backend_health()
            await asyncio.sleep(self.config['reconcile_interval'])

    # -- drain -------------------------------------------------------------

    def load_drains(self):
        """Restore the drain switch from disk (maintenance survives a restart)."""
        try:
            drains = json.loads(read_text(self.config['drain_file']) or '{}')
        except ValueError:
            log('drain_file_unreadable', path=self.config['drain_file'])
            drains = {}
        for prefix, drain in drains.items() if isinstance(drains, dict) else ():
            if isinstance(drain, (int, float)):  # an older release's format: the start time alone
                drain = {'since': drain}
            if prefix in self.prefixes and isinstance(drain, dict) and isinstance(drain.get('since'), (int, float)):
                after = drain.get('withdraw_after')
                self.prefixes[prefix].drain(drain['since'], after if isinstance(after, (int, float)) else None)

    def save_drains(self):
        """Persist the drain switch."""
        drains = {p: {'since': s.drained_at, 'withdraw_after': s.drain_after}
                  for p, s in self.prefixes.items() if s.drained_at is not None}
        atomic_write(self.config['drain_file'], json.dumps(drains, indent=1) + '\n', mode=0o644)

    def set_drain(self, prefix, drained, withdraw_after=None):
        """Drain or undrain one prefix (or all when prefix is None); return the prefixes affected.

        `withdraw_after` (seconds) replaces the prefixes' drain_withdraw_after for this drain.
        """
        if prefix is not None and prefix not in self.prefixes:
            raise ValueError('unknown prefix %s; configured: %s' % (prefix, ', '.join(self.prefixes) or 'none'))
        if withdraw_after is not None and (isinstance(withdraw_after, bool) or not isinstance(withdraw_after, (int, float))
                                           or not 0 <= withdraw_after <= 86400):
            raise ValueError('withdraw_after must be a number of seconds from 0 to 86400, got %r' % (withdraw_after,))
        targets = [prefix] if prefix else list(self.prefixes)
        now = time.time()
        for target in targets:
            if drained:
                self.prefixes[target].drain(now, withdraw_after)
            else:
                self.prefixes[target].undrain()
        self.save_drains()
        for target in targets:
            self.evaluate(target, 'drain' if drained else 'undrain')
        return targets

    def status(self):
        """Everything a user wants to see, as JSON-able data: the checker's decision and what BIRD does."""
        now = time.time()
        view = self.announcer.view or {'values': {}, 'exported': {}}
        return {p: {'state': state_name(s.value(now)), 'value': s.value(now), 'healthy': s.health.healthy,
                    'drained': s.drained_at is not None, 'drain_withdraw_at': s.drain_deadline(),
                    'held_down_until': round(s.damping.held_until, 3) if s.damping.held(now) else None,
                    'flaps_in_window': len(s.damping.recent(now)),
                    'bird_value': view['values'].get(p), 'exported': bool(view['exported'].get(p)),
                    'exported_to': view['exported'].get(p, []),
                    'checks': self.runner_of[p].last_results if p in self.runner_of else [],
                    **({'backends': {b: h.healthy for b, h in self.backends[p].backends.items()},
                        'min_healthy': s.spec['min_healthy']} if p in self.backends else {})}
                for p, s in self.prefixes.items()}

    async def handle_control(self, reader, writer):
        """One JSON request per connection: drain, undrain, status."""
        try:
            request = await read_control_request(reader)
            command = request.get('command')
            if command in ('drain', 'undrain'):
                done = self.set_drain(request.get('prefix'), command == 'drain', request.get('withdraw_after'))
                reply = {'ok': True, 'command': command, 'prefixes': done, 'status': self.status()}
            elif command == 'status':
                await self.announcer.read_view()  # what BIRD does now, not a second ago
                reply = {'ok': True, 'status': self.status(), 'endpoints': self.endpoints.state(),
                         'self_checks': self.self_checks.results}
            else:
                reply = {'ok': False, 'error': 'unknown command %r' % command}
        except (ValueError, OSError) as exc:
            reply = {'ok': False, 'error': str(exc)}
        try:
            writer.write((json.dumps(reply) + '\n').encode('utf-8'))
            await writer.drain()
        except OSError:
            pass  # the client left before its answer

    # -- metrics -----------------------------------------------------------

    async def handle_metrics(self, reader, writer):
        """Minimal HTTP/1.0 server for GET /metrics."""
        try:
            request = await read_http_request(reader)
            parts = request.split()
            if len(parts) >= 2 and parts[0] == b'GET' and parts[1] in (b'/metrics', b'/'):
                body = self.metrics.render(self.prefixes, time.time()).encode('utf-8')
                head = 'HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: %d\r\n\r\n' % len(body)
            else:
                body = b'not found\n'
                head = 'HTTP/1.0 404 Not Found\r\nContent-Length: %d\r\n\r\n' % len(body)
            writer.write(head.encode('ascii') + body)
            await writer.drain()
        except (OSError, ValueError):
            pass  # too slow, too long or gone: the endpoint closes it

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
        await self.endpoints.apply({'control': self.config['control_socket'], 'metrics': self.config['metrics_listen']})

    # -- lifecycle ---------------------------------------------------------

    def install(self, config):
        """Create, keep or update runners and prefixes to match a (new) configuration.

        A prefix keeps its drain switch and flap damping; a group whose checks and timing did not change
        keeps its runner, counters and health; a changed one starts new counters but
        keeps the prefix's health (no needless withdraw on a reload).
        """
        old = {'runners': self.runners, 'runner_of': self.runner_of, 'backend_runners': self.backend_runners}
        old_prefixes, old_backends = self.prefixes, self.backends
        self.runners, self.prefixes, self.runner_of, self.backends, self.backend_runners = {}, {}, {}, {}, {}
        started = []
        for spec in config['prefixes']:
            prefix = spec['prefix']
            own = None
            if spec['checks']:
                runner = self.runner_of[prefix] = self._runner(spec, health_key(spec), old, 'runner_of', prefix, started)
                own = runner.health
            if 'backends' in spec:
                healths = {}
                for backend, checks in backend_checks(spec, self.config['command_runner_socket']).items():
                    bspec = dict(spec, checks=checks)
                    runner = self.backend_runners[(prefix, backend)] = self._runner(
                        bspec, 'backend ' + health_key(bspec), old, 'backend_runners', (prefix, backend), started)
                    healths[backend] = runner.health
                self.backends[prefix] = Backends(spec, healths, own, old_backends.get(prefix))
            health = self.backends.get(prefix) or own
            self.prefixes[prefix] = Prefix(spec, health, old_prefixes.get(prefix), self.self_checks)
        for runner in old['runners'].values():
            runner.stop()
        return started

    def _runner(self, spec, key, old, kind, owner, started):
        """The runner of a health group (prefixes, or backends of prefixes, with the same checks and timing):
        kept from before a reload when unchanged, else new, keeping the health `owner` had in old[kind]."""
        runner = self.runners.get(key) or old['runners'].pop(key, None)
        if runner is None:
            previous = old[kind].get(owner)
            runner = Runner(spec, Health(spec, previous.health if previous else None), self.ticker, self.engine,
                            self.round_done)
            started.append(runner)
        if key not in self.runners:
            runner.prefixes = []
            self.runners[key] = runner
        runner.prefixes.append(owner if kind == 'runner_of' else owner[0])
        return runner

    def reload(self):
        """SIGHUP: re-read the configuration; keep the state of unchanged prefixes."""
        try:
            config = load_config(self.config_path)
        except ConfigError as exc:
            log('reload_failed', error=str(exc))
            return
        removed = [p for p in self.prefixes if p not in {s['prefix'] for s in config['prefixes']}]
        self.config = self.announcer.config = config
        self.metrics.region_nvas = config['region_nvas']
        self.use_self_checks(SelfChecks(config['self_checks'], self.self_checks))
        for runner in self.install(config):
            runner.start()
        if self.backends:
            self.write_backend_health()
        for prefix in removed + list(self.prefixes):
            self.evaluate(prefix, 'removed' if prefix in removed else 'reload')
        asyncio.ensure_future(self.start_servers())
        log('reloaded', prefixes=list(self.prefixes), removed=removed)

    async def run(self):
        """Main: fail closed, serve, probe, until SIGTERM/SIGINT; then withdraw everything."""
        loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        self.announcer = Announcer(self.config, self.metrics, self.request_stop, self.write_textfile)
        self.metrics.failsafe_file = self.config['failsafe_file']
        self.metrics.region_nvas = self.config['region_nvas']
        self.engine = probe_engine()
        self.use_self_checks(SelfChecks(self.config['self_checks']))
        self.install(self.config)
        if self.backends:
            self.write_backend_health()  # every backend down until `rise`: the updater keeps every backend
        self.load_drains()
        # Fail closed: whatever the file said before, nothing is announced until `rise`.
        self.announcer.wanted = {p: 0 for p in self.prefixes}
        await self.announcer.apply(self.announcer.wanted)
        await self.start_servers()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        await self.announcer.read_view()  # the BGP self-check's first look
        background = [asyncio.ensure_future(self.announcer.reconcile_loop()), asyncio.ensure_future(self._textfile_loop()),
                      asyncio.ensure_future(self._self_check_loop())]
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
        self.endpoints.close()
        for runner in self.runners.values():
            runner.stop()
        for prefix in self.prefixes:
            self.evaluate(prefix, 'stop')
        await self.announcer.apply({p: 0 for p in self.prefixes})
        log('stopped', exit_code=self.exit_code)
        return self.exit_code

    async def _watchdog(self, period):
        # A stuck loop stops these pings: systemd then kills us and ExecStopPost withdraws.
        while True:
            sd_notify('WATCHDOG=1')
            await asyncio.sleep(period)
