"""Benchmark 1 of issue 5, application failure: how fast a failed application is withdrawn, and what it costs the clients.

Parts (each holds the lab lock, see labbench.exclusive_lab):
- failover: stop the region's application backend while the on-premises client sends 50 requests/s; time from the
  stop to the moment each NVA's route is gone from the Route Server (both instances of the lab's speaker BIRD in
  the region's fabric namespace, watched on their control sockets every 5 ms) and failed requests. Our checker at
  its defaults, then anycast-healthchecker (bench/ahc_anchor.py) at its defaults and at our interval/timeout/rise/fall.
- flap: 5% of our checker's probes fail at random for 2,000 probes: its request segments dropped at random, and
  the rest of a dropped one's connection (nftables `numgen random mod 100 < 5` in the output path of one NVA of the
  other region, only for the checker's user; see flap_rules), so kept connections fail as well as new ones;
  withdraws seen at the peer, probes and failed probes counted by the checker's metrics.
- sigkill: kill -9 the checker while the application is healthy; time until the withdraw at the peer.
`all` runs the three in one lab hold (about 14 min; the flap part on the other region meanwhile).

Same for both checkers: the NVAs, BIRD and its export filter (only the variable it reads differs), the backend, the
client, the moment of failure (a random phase against the probe schedule) and the measuring point. Different: our
check is an HTTP GET with a body match, in-process; anycast-healthchecker forks `curl -fsS -m <timeout>` (plus its
`ip address show` check of the loopback) per probe and `sudo birdc configure` per change; it has no fast re-probe
after a first failure. Failed requests: the share of the requests sent in the 15 s after the stop (the e2e test's
window), and the count over the whole outage.

    .venv/bin/python bench/failover_bench.py [--part all|failover|flap|sigkill|restore|report] [--trials 10]

Figures go to bench/results/failover.json (parts run separately are merged into it) and the timeline plot of one
trial of ours and one of anycast-healthchecker to bench/results/failover_timeline.png (needs matplotlib:
bench/requirements-bench.txt).
"""
import argparse
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

import ahc_anchor
import labbench
from anycast_lab.regions import birdconf, convergence, plan, routers
from anycast_lab.regions.traffic import Traffic, settled

RATE = 50.0
WINDOW = 15.0        # failed-request share is over the requests sent in this many seconds after the stop (the e2e test's window)
POLL = 0.005         # speaker control sockets are asked this often
SIGKILL_WATCH = 15.0
TARGETS = {"median": 0.5, "worst": 1.0, "failed_pct": 2.0, "false_withdraws": 0, "sigkill": 1.0}


def log(message):
    print(time.strftime("%H:%M:%S ") + message, flush=True)


# -- the Route Server side: what each speaker instance holds for the anycast /32 ----------------------------------

class BirdSocket:
    """BIRD's control protocol on its unix socket: one request, lines until a final `NNNN ` line."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = b""
        self._reply()  # greeting

    def _reply(self):
        lines = []
        while True:
            while b"\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("BIRD closed the control socket")
                self.buf += chunk
            line, self.buf = self.buf.split(b"\n", 1)
            text = line.decode(errors="replace")
            lines.append(text)
            if len(text) >= 5 and text[:4].isdigit() and text[4] == " ":
                return "\n".join(lines)

    def query(self, command):
        self.sock.sendall(command.encode() + b"\n")
        return self._reply()

    def close(self):
        self.sock.close()


class PeerWatch:
    """Which NVAs' routes for the anycast /32 each Route Server instance of a region holds, sampled every POLL s."""

    PEER = re.compile(r"\[(peer_[0-9_]+) ")

    def __init__(self, region):
        self.region = region
        self.paths = [routers.ctl_path(routers.speaker_name(region, i)) for i in (0, 1)]
        self.lock = threading.Lock()
        self.state = {}      # (instance, peer) -> present
        self.events = []     # (t, instance, peer, present): every change seen
        self.samples = 0
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self.ready.wait(10):
            raise RuntimeError(f"cannot read {region.name}'s Route Server speakers")

    def _run(self):
        socks = [None, None]
        command = f"show route {plan.ANYCAST_IP}/32"
        while not self.stopping.is_set():
            for instance, path in enumerate(self.paths):
                try:
                    if socks[instance] is None:
                        socks[instance] = BirdSocket(path)
                    peers = set(self.PEER.findall(socks[instance].query(command)))
                except OSError:
                    if socks[instance] is not None:
                        socks[instance].close()
                    socks[instance] = None
                    continue
                now = time.time()
                with self.lock:
                    for peer in peers | {p for (i, p) in self.state if i == instance}:
                        present = peer in peers
                        if self.state.get((instance, peer)) != present:
                            if (instance, peer) in self.state or present:
                                self.events.append((now, instance, peer, present))
                            self.state[(instance, peer)] = present
            self.samples += 1
            if self.samples >= 2:
                self.ready.set()
            time.sleep(POLL)
        for sock in socks:
            if sock is not None:
                sock.close()

    def stop(self):
        self.stopping.set()
        self.thread.join(5)

    def present(self, peer):
        """The peer's route is held by both Route Server instances now."""
        with self.lock:
            return all(self.state.get((i, peer)) for i in (0, 1))

    def gone_at(self, peer, since):
        """When the peer's route left the Route Server (the later of the two instances) after `since`; None if not."""
        times = []
        with self.lock:
            for instance in (0, 1):
                gone = [t for t, i, p, present in self.events if i == instance and p == peer and not present and t >= since]
                if not gone:
                    return None
                times.append(gone[0])
        return max(times)

    def withdraws(self, peer, since):
        """Withdraws of the peer's route seen after `since`, per instance."""
        with self.lock:
            return [sum(1 for t, i, p, present in self.events if i == instance and p == peer and not present and t >= since) for instance in (0, 1)]


def peers(region):
    """{NVA host name: its BGP protocol name at the Route Server}."""
    return {name: birdconf.peer_protocol(address) for name, address, *_rest in region.nvas}


def wait(predicate, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"after {timeout:.0f} s: {what}")
        time.sleep(interval)


def healthy(region, watch, timeout=60, urgent=None):
    """Wait until every NVA of the region is at the Route Server and on-premises has ECMP over both regions."""
    names = peers(region)
    deadline = time.monotonic() + timeout
    nudged = 0.0
    while not (all(watch.present(p) for p in names.values()) and labbench.anycast_learned_from_both_regions()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{region.name} not announced by both NVAs with on-premises ECMP after {timeout} s")
        if urgent and time.monotonic() - nudged > 0.5:
            urgent()
            nudged = time.monotonic()
        time.sleep(0.05)


# -- part: failover ------------------------------------------------------------------------------------------------

def answer(region):
    return f"{region.name} {region.short}-app"


def failover_trial(topo, region, watch, interval, max_wait, urgent=None):
    """One application failure: returns the trial's figures and its per-request records."""
    other = next(item for item in plan.REGIONS if item is not region)
    names = peers(region)
    healthy(region, watch, urgent=urgent)
    flow = Traffic(rate=RATE)
    try:
        # A random phase against the checker's probe schedule.
        time.sleep(2 + random.uniform(0, interval))
        stopped = time.time()
        topo.service_stop(f"{region.short}-app", "web")
        stop_done = time.time()
        deadline = stopped + max_wait
        while True:
            gone = {name: watch.gone_at(peer, stopped) for name, peer in names.items()}
            last = max(gone.values()) if all(gone.values()) else None
            now = time.time()
            if now >= stopped + WINDOW and (last is not None and now >= last + 2 or now >= deadline):
                break
            time.sleep(0.05)
    finally:
        try:
            records = flow.stop()
        finally:
            if flow.proc.poll() is None:
                flow.proc.kill()
            topo.service_start(f"{region.short}-app", "web")
    after = [r for r in records if r["t"] >= stopped]
    in_window = [r for r in after if r["t"] < stopped + WINDOW]
    failed_window = sum(1 for r in in_window if not r["ok"])
    moved = settled(after, answer(other))
    trial = {
        "stopped": stopped, "stop_call_s": round(stop_done - stopped, 4),
        "withdraw_s": {name: (round(t - stopped, 4) if t else None) for name, t in gone.items()},
        "region_withdraw_s": round(last - stopped, 4) if last else None,
        "requests_after_stop": len(after), "failed_after_stop": sum(1 for r in after if not r["ok"]),
        "requests_window": len(in_window), "failed_window": failed_window,
        "failed_window_pct": round(100.0 * failed_window / len(in_window), 3) if in_window else None,
        "traffic_moved_s": round(moved - stopped, 4) if moved else None,
        "rate": round(len(in_window) / WINDOW, 1),
    }
    return trial, records


def compact(records, stopped):
    """Per-request outcome for the timeline: [seconds from the stop, answer or 'failed']."""
    return [[round(r["t"] - stopped, 4), r["body"] if r["ok"] else "failed"] for r in records]


def run_config(topo, region, watch, label, trials, interval, max_wait, urgent=None):
    out = {"trials": []}
    for index in range(trials):
        trial, records = failover_trial(topo, region, watch, interval, max_wait, urgent)
        out["trials"].append(trial)
        if index == 0:
            out["timeline"] = {"records": compact(records, trial["stopped"]), "withdraw_s": trial["withdraw_s"],
                               "region_withdraw_s": trial["region_withdraw_s"]}
        log(f"{label} trial {index + 1}/{trials}: withdraw per NVA {trial['withdraw_s']}, region {trial['region_withdraw_s']} s, "
            f"failed {trial['failed_window']}/{trial['requests_window']} in {WINDOW:.0f} s ({trial['failed_window_pct']}%), "
            f"{trial['failed_after_stop']} failed in all, traffic on the other region after {trial['traffic_moved_s']} s")
    return out


def our_settings(topo, region):
    """Our checker's timing as deployed on the region's NVAs (the role's defaults in the lab)."""
    nva = ahc_anchor.Nva(topo, region.nvas[0][0])
    config = json.loads(nva.sh("cat /etc/anycast-healthcheck/config.json"))
    spec = config["prefixes"][0]
    # The daemon's code: its launcher and every module of its package, in a fixed order.
    daemon = nva.sh("cd /usr/local/lib/anycast-healthcheck && cat anycast-healthcheck.py $(ls anycast_healthcheck/*.py | sort) | sha256sum").split()[0]
    return {key: spec[key] for key in ("interval", "fast_interval", "timeout", "rise", "fall")} | {"checks": spec["checks"], "daemon_sha256": daemon}


def equal_settings(ours):
    return {"check_interval": ours["interval"], "check_timeout": ours["timeout"], "check_rise": ours["rise"], "check_fail": ours["fall"]}


def part_failover(topo, region, trials, configs, raw):
    ours = our_settings(topo, region)
    raw["settings"] = {"ours": ours, "ahc-defaults": dict(ahc_anchor.DEFAULTS), "ahc-equal": equal_settings(ours),
                       "ahc-check": ahc_anchor.service_conf(region, {}).strip().splitlines()}
    failover = raw.setdefault("failover", {})
    watch = PeerWatch(region)
    try:
        if "ours" in configs:
            failover["ours"] = run_config(topo, region, watch, "ours", trials, ours["interval"], 10)
        anchor_configs = [c for c in ("ahc-defaults", "ahc-equal") if c in configs]
        if anchor_configs:
            with anchored(topo, region) as anchor:
                for label in anchor_configs:
                    settings = {} if label == "ahc-defaults" else equal_settings(ours)
                    anchor.start(settings)
                    interval = ahc_anchor.DEFAULTS["check_interval"] if label == "ahc-defaults" else ours["interval"]
                    fall = ahc_anchor.DEFAULTS["check_fail"] if label == "ahc-defaults" else ours["fall"]
                    failover[label] = run_config(topo, region, watch, label, trials, interval, interval * (fall + 1) + 10, anchor.urgent)
                    if label == "ahc-defaults" and "sigkill" in configs:
                        raw.setdefault("sigkill", {})["ahc-defaults"] = sigkill_anchor(topo, region, watch, anchor)
    finally:
        watch.stop()


class anchored:  # pylint: disable=invalid-name
    """anycast-healthchecker on the region's NVAs for the `with` block; our checker and BIRD config restored after."""

    def __init__(self, topo, region):
        self.anchor = ahc_anchor.Anchor(topo, region, log)

    def __enter__(self):
        try:
            self.anchor.install()
        except BaseException:
            self.anchor.restore()
            raise
        return self.anchor

    def __exit__(self, *exc):
        self.anchor.restore()
        return False


# -- part: sigkill -------------------------------------------------------------------------------------------------

def sigkill_ours(topo, region, watch, trials):
    names = peers(region)
    out = []
    for index in range(trials):
        name = region.nvas[index % 2][0]
        nva = ahc_anchor.Nva(topo, name)
        healthy(region, watch)
        restarts = int(nva.sh("systemctl show -p NRestarts --value anycast-healthcheck").strip())
        time.sleep(random.uniform(0, 0.4))
        killed = nva.kill9("anycast-healthcheck")
        wait(lambda: watch.gone_at(names[name], killed) or time.time() > killed + SIGKILL_WATCH, SIGKILL_WATCH + 5, "watch")
        gone = watch.gone_at(names[name], killed)
        # Restart=on-failure (RestartSec=1) brings it back; it announces again after `rise`.
        wait(lambda: watch.present(names[name]), 30, f"{name}: our checker did not announce again after the SIGKILL")
        back = time.time()
        now_restarts = int(nva.sh("systemctl show -p NRestarts --value anycast-healthcheck").strip())
        trial = {"nva": name, "withdraw_s": round(gone - killed, 4) if gone else None, "reannounced_s": round(back - killed, 3),
                 "restarted_by_systemd": now_restarts > restarts, "active": nva.sh("systemctl is-active anycast-healthcheck || true").strip()}
        out.append(trial)
        log(f"SIGKILL ours {index + 1}/{trials} on {name}: withdraw at the Route Server after {trial['withdraw_s']} s; "
            f"systemd restarted it: {trial['restarted_by_systemd']}; announced again after {trial['reannounced_s']} s")
    return out


def sigkill_anchor(topo, region, watch, anchor):
    """kill -9 anycast-healthchecker on each NVA in turn; it leaves its prefix file as it is (fails open)."""
    names = peers(region)
    out = []
    for nva in anchor.nvas:
        healthy(region, watch, urgent=anchor.urgent)
        killed = nva.kill9(ahc_anchor.UNIT)
        time.sleep(SIGKILL_WATCH)
        gone = watch.gone_at(names[nva.name], killed)
        trial = {"nva": nva.name, "withdraw_s": round(gone - killed, 4) if gone else None, "watched_s": SIGKILL_WATCH,
                 "prefix_file_after": ahc_anchor.ANYCAST + "/32" in nva.sh(f"cat {ahc_anchor.PREFIX_FILE}")}
        out.append(trial)
        log(f"SIGKILL {ahc_anchor.NAME} on {nva.name}: " + (f"withdraw after {trial['withdraw_s']} s" if gone else
            f"never within {SIGKILL_WATCH:.0f} s (its prefix file still lists the prefix: {trial['prefix_file_after']})"))
        anchor.restart(nva)
    return out


def part_sigkill(topo, region, trials, raw, with_anchor=True):
    watch = PeerWatch(region)
    try:
        try:
            raw.setdefault("sigkill", {})["ours"] = sigkill_ours(topo, region, watch, trials)
        finally:
            # Whatever happened above, leave our checker running on every NVA of the region.
            for name, *_rest in region.nvas:
                ahc_anchor.Nva(topo, name).sh("systemctl is-active --quiet anycast-healthcheck || "
                                              "{ systemctl reset-failed anycast-healthcheck; systemctl start anycast-healthcheck; }")
        if with_anchor:
            with anchored(topo, region) as anchor:
                anchor.start({})
                raw["sigkill"]["ahc-defaults"] = sigkill_anchor(topo, region, watch, anchor)
    finally:
        watch.stop()


# -- part: flap ----------------------------------------------------------------------------------------------------

FLAP_TABLE = "anycast_bench_flap"
FLAP_MIN_FAILED_PCT = 4.0  # 5% of 2,000 probes, less two standard deviations (0.49%): fewer failed, the part proved less


def flap_rules(backend, uid):
    """5% of the checker's probes fail at random, with or without a kept connection.

    The checker's request segments (TCP payload: PSH without SYN or RST; one per probe) to the backend are dropped
    at random (`numgen random mod 100 < 5`, output hook, only for the checker's user: forwarded client traffic never
    passes it). A dropped request's connection is then dead (its source port in a set, 60 s): its retransmissions,
    which would pass after the 200 ms minimum RTO, within the 250 ms probe timeout, are dropped too, so the probe
    times out like one whose SYN was lost. The checker closes it and opens a new one for its next probe.
    Counters, in order: connections opened (SYNs), packets of dead connections, requests, requests dropped.
    """
    return (f"table inet {FLAP_TABLE} {{\n"
            f"  set failed {{\n    type inet_service; flags dynamic,timeout; timeout 60s;\n  }}\n"
            f"  chain output {{\n    type filter hook output priority filter; policy accept;\n"
            f"    meta skuid {uid} ip daddr {backend} tcp dport 80 jump probe\n  }}\n"
            f"  chain probe {{\n    tcp flags & (syn | ack) == syn counter\n    tcp sport @failed counter drop\n"
            f"    tcp flags & (syn | rst | psh) == psh counter numgen random mod 100 < 5 add @failed {{ tcp sport }} counter drop\n"
            f"  }}\n}}\n")


def probe_counts(metrics):
    total = {"ok": 0, "fail": 0}
    for key, value in metrics.items():
        if key.startswith("anycast_healthcheck_checks_total{"):
            total["ok" if 'result="ok"' in key else "fail"] += int(value)
    transitions = int(sum(v for k, v in metrics.items() if k.startswith("anycast_healthcheck_transitions_total{")))
    return total, transitions


def nft_counters(nva):
    out = nva.sh(f"nft list table inet {FLAP_TABLE}")
    return [int(n) for n in re.findall(r"counter packets (\d+)", out)]  # in the order of flap_rules' rules


def part_flap(topo, region, host, probes, raw):
    nva = ahc_anchor.Nva(topo, host)
    peer = peers(region)[host]
    user = nva.sh("systemctl show -p User --value anycast-healthcheck").strip() or "anycast-hc"
    uid = int(nva.sh(f"id -u {user}").strip())
    backend = region.backend_ip
    watch = PeerWatch(region)
    try:
        wait(lambda: watch.present(peer), 60, f"{host} is not announced at the Route Server")
        before, transitions_before = probe_counts(nva.metrics())
        started = time.time()
        nva.sh("nft -f -", stdin=flap_rules(backend, uid))
        log(f"flap: dropping 5% of {user}'s probe requests to {backend} on {host} (and their connections) until {probes} probes")
        limit = time.monotonic() + probes * 0.4 * 1.5 + 120
        try:
            while True:
                now, _failed = probe_counts(nva.metrics())
                done = sum(now.values()) - sum(before.values())
                if done >= probes or time.monotonic() > limit:
                    break
                time.sleep(min(10.0, max(0.5, (probes - done) * 0.35)))
            syns, dead, requests, dropped = nft_counters(nva)
        finally:
            nva.sh(f"nft delete table inet {FLAP_TABLE} 2>/dev/null; true")
        ended = time.time()
        after, transitions_after = probe_counts(nva.metrics())
        withdraws = watch.withdraws(peer, started)
        probes_done, failed = sum(after.values()) - sum(before.values()), after["fail"] - before["fail"]
        out = {"nva": host, "probes": probes_done, "probes_failed": failed,
               "probes_failed_pct": round(100.0 * failed / probes_done, 2) if probes_done else None,
               "connections_opened": syns, "requests_seen": requests, "requests_dropped": dropped, "dead_connection_packets_dropped": dead,
               "drop_pct": round(100.0 * dropped / requests, 2) if requests else None,
               "withdraws_at_peer_per_instance": withdraws, "false_withdraws": max(withdraws),
               "checker_transitions": transitions_after - transitions_before, "seconds": round(ended - started, 1)}
        log(f"flap: {out['probes']} probes, {out['probes_failed']} failed ({out['probes_failed_pct']}%, the checker's metrics); "
            f"{dropped} of {requests} requests dropped, {syns} connections opened, "
            f"withdraws seen at the Route Server: {withdraws}, checker transitions: {out['checker_transitions']}")
        raw["flap"] = out
    finally:
        watch.stop()


# -- figures -------------------------------------------------------------------------------------------------------

def config_figures(data):
    trials = data["trials"]
    region = [t["region_withdraw_s"] for t in trials if t["region_withdraw_s"] is not None]
    per_nva = [v for t in trials for v in t["withdraw_s"].values() if v is not None]
    failed = [t["failed_window_pct"] for t in trials if t["failed_window_pct"] is not None]
    counts = [t["failed_after_stop"] for t in trials]
    med, worst = labbench.median_worst(region)
    nmed, nworst = labbench.median_worst(per_nva)
    fmed, fworst = labbench.median_worst(failed)
    figures = {"trials": len(trials), "not_withdrawn": sum(1 for t in trials if t["region_withdraw_s"] is None),
               "region_median_s": med, "region_worst_s": worst, "nva_median_s": nmed, "nva_worst_s": nworst,
               "failed_pct_median": fmed, "failed_pct_worst": fworst, "failed_pct_mean": statistics.mean(failed) if failed else None,
               "failed_count_median": statistics.median(counts) if counts else None, "failed_count_worst": max(counts) if counts else None}
    return {key: round(value, 4) if isinstance(value, float) else value for key, value in figures.items()}


def build_rows(raw):
    rows = []
    fo = raw.get("failover", {})
    figs = {label: config_figures(data) for label, data in fo.items()}
    raw["figures"] = figs
    ours = figs.get("ours", {})
    anchors = [(label, f"{ahc_anchor.NAME} ({'defaults' if label == 'ahc-defaults' else 'equal interval/timeout/rise/fall'})")
               for label in ("ahc-defaults", "ahc-equal")]

    def add(metric, key, target, unit, check):
        value = ours.get(key)
        met = None if value is None or target is None else check(value, target)
        for label, name in anchors:
            rows.append(labbench.row(metric, value, target, met, anchor=figs.get(label, {}).get(key), anchor_name=name, unit=unit))

    def le(value, target):
        return value <= target

    add("withdraw at the Route Server after the application stops, median (region: last NVA)", "region_median_s", TARGETS["median"], "s", le)
    add("withdraw at the Route Server after the application stops, worst (region: last NVA)", "region_worst_s", TARGETS["worst"], "s", le)
    add("withdraw at the Route Server per NVA, median", "nva_median_s", None, "s", le)
    add("withdraw at the Route Server per NVA, worst", "nva_worst_s", None, "s", le)
    add(f"failed requests in the {WINDOW:.0f} s after the stop at {RATE:.0f} requests/s, median of trials", "failed_pct_median", TARGETS["failed_pct"], "%", le)
    add(f"failed requests in the {WINDOW:.0f} s after the stop at {RATE:.0f} requests/s, worst trial", "failed_pct_worst", TARGETS["failed_pct"], "%", le)
    add("failed requests per failover (whole outage), median", "failed_count_median", None, "requests", le)
    flap = raw.get("flap")
    if flap:
        # The failed share is the checker's own count: the target needs >= 2,000 probes of which about 5% failed.
        failed_pct = flap["probes_failed_pct"]
        rows.append(labbench.row(f"false withdraws over {flap['probes']} probes, {flap['probes_failed']} ({failed_pct}%) failing at random "
                                 f"(our defaults, {flap['nva']})", flap["false_withdraws"], TARGETS["false_withdraws"],
                                 flap["false_withdraws"] == 0 and flap["probes"] >= 2000 and (failed_pct or 0) >= FLAP_MIN_FAILED_PCT,
                                 anchor=None, anchor_name="not run for the anchor", unit="withdraws"))
    kills = raw.get("sigkill", {})
    if kills.get("ours"):
        times = [t["withdraw_s"] for t in kills["ours"]]
        done = [t for t in times if t is not None]
        worst = max(done) if len(done) == len(times) else None
        anchor_kills = kills.get("ahc-defaults") or []
        if anchor_kills and all(t["withdraw_s"] is None for t in anchor_kills):
            anchor_value = f"never within {SIGKILL_WATCH:.0f}"  # the unit (s) follows in the table
        else:
            anchor_value = max((t["withdraw_s"] for t in anchor_kills if t["withdraw_s"] is not None), default=None)
        rows.append(labbench.row(f"withdraw at the Route Server after SIGKILL of the checker, worst of {len(times)}", worst, TARGETS["sigkill"],
                                 worst is not None and worst <= TARGETS["sigkill"], anchor=anchor_value,
                                 anchor_name=f"{ahc_anchor.NAME} (defaults)", unit="s"))
    return rows


def timeline_png(raw, path):
    try:
        import matplotlib  # pylint: disable=import-outside-toplevel
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
    except ImportError:
        log("matplotlib missing (pip install -r bench/requirements-bench.txt): no timeline plot")
        return None
    panels = [(label, raw["failover"][label]["timeline"]) for label in ("ours", "ahc-defaults", "ahc-equal")
              if "timeline" in raw.get("failover", {}).get(label, {})]
    if not panels:
        return None
    rows = {"westeurope we-app": 2, "northeurope ne-app": 1, "failed": 0}
    colours = {2: "tab:blue", 1: "tab:green", 0: "tab:red"}
    fig, axes = plt.subplots(len(panels), 1, figsize=(13, 2.6 * len(panels)), squeeze=False)
    titles = {"ours": "anycast.nva health checker (defaults)", "ahc-defaults": f"{ahc_anchor.NAME} (defaults)",
              "ahc-equal": f"{ahc_anchor.NAME} (our interval/timeout/rise/fall)"}
    for axis, (label, line) in zip(axes[:, 0], panels):
        for level, colour in colours.items():
            xs = [t for t, body in line["records"] if rows.get(body, 0) == level]
            axis.scatter(xs, [level] * len(xs), s=6, color=colour, marker="|")
        axis.axvline(0, color="black", linewidth=1.2, label="application stopped")
        for index, (name, value) in enumerate(sorted(line["withdraw_s"].items())):
            if value is not None:
                axis.axvline(value, color="tab:orange", linestyle=("--", ":")[index % 2], linewidth=1, label=f"withdraw {name}")
        if line["region_withdraw_s"] is not None:
            axis.axvline(line["region_withdraw_s"], color="tab:purple", linewidth=1.2,
                         label=f"region withdrawn ({line['region_withdraw_s']:.2f} s)")
        axis.set_xlim(-2, max(t for t, _body in line["records"]) + 0.5)  # the lead-in before the stop is random: show 2 s of it
        axis.set_yticks([0, 1, 2], ["failed", "northeurope", "westeurope"])
        axis.set_ylim(-0.6, 2.6)
        axis.set_title(titles[label], fontsize=10)
        axis.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=7)
    axes[-1, 0].set_xlabel("seconds from the application stop in westeurope (on-premises client, 50 requests/s)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    log(f"timeline written to {os.path.relpath(path, labbench.ROOT)}")
    return path


def load_raw():
    path = os.path.join(labbench.RESULTS, "failover.json")
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle).get("raw", {})
    except (OSError, ValueError):
        return {}


def finish(raw):
    rows = build_rows(raw)
    trials = {label: len(data["trials"]) for label, data in raw.get("failover", {}).items()}
    labbench.save("failover", rows, trials=trials, raw=raw, rate=RATE, window_s=WINDOW, anchor=ahc_anchor.NAME,
                  commit=subprocess.run(["git", "-C", labbench.ROOT, "rev-parse", "HEAD"], capture_output=True, text=True, check=False).stdout.strip())
    timeline_png(raw, os.path.join(labbench.RESULTS, "failover_timeline.png"))
    for item in rows:
        log(f"{item['metric']}: ours {item['ours']} {item['unit']} (target {item['target']}, met {item['met']}); "
            f"{item['anchor_name']}: {item['anchor']}")


def main():
    # Traffic.stop() ends the client with SIGINT; a shell's background job (`cmd &`) inherits SIGINT ignored, and so
    # would the client: give this process a handler, which its children get back as the default.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["all", "failover", "flap", "sigkill", "restore", "report"], default="all",
                        help="restore: put our checker and the role's bird.conf back after an interrupted run; "
                             "report: rows and plot again from the figures already in the results file (no lab)")
    parser.add_argument("--trials", type=int, default=10, help="failover trials per configuration and SIGKILLs of ours (default %(default)s)")
    parser.add_argument("--configs", default="ours,ahc-defaults,ahc-equal", help="failover configurations to run (default %(default)s)")
    parser.add_argument("--region", default="westeurope", help="region whose application fails (default %(default)s)")
    parser.add_argument("--flap-host", default="ne-nva2", help="NVA of the other region for the flap part (default %(default)s)")
    parser.add_argument("--flap-probes", type=int, default=2000, help="(default %(default)s)")
    parser.add_argument("--convergence-delay", type=float, default=0.0,
                        help="seconds the lab's ExpressRoute edge holds the updates it passes to on-premises, as Azure "
                             "takes to converge (default %(default)s; put back to 0 at the end)")
    args = parser.parse_args()
    region = plan.region(args.region)
    flap_host = args.flap_host
    flap_region = next(item for item in plan.REGIONS if any(name == flap_host for name, *_rest in item.nvas))
    configs = [item.strip() for item in args.configs.split(",") if item.strip()]
    raw = load_raw()
    if args.part == "report":
        finish(raw)
        return 0
    ahc_anchor.site_packages()  # download before taking the lock
    with labbench.exclusive_lab():
        started = time.monotonic()
        handle = labbench.ensure_deployed()
        topo = handle.topology()
        if args.part == "restore":
            for name, *_rest in region.nvas:
                ahc_anchor.restore_nva(ahc_anchor.Nva(topo, name), log=log)
            return 0
        for item in plan.REGIONS:
            # Started when the lab came up, perhaps by an older checkout: restarted, the backends run this one's httpd.py.
            topo.service_stop(f"{item.short}-app", "web")
            topo.service_start(f"{item.short}-app", "web")
        raw["backend"] = "lab/anycast_lab/hosts/httpd.py: HTTP/1.1 keep-alive, idle timeout 75 s (nginx's defaults)"
        raw["convergence_delay_s"] = args.convergence_delay
        convergence.write_delay(handle.base, args.convergence_delay)
        flap = None
        if args.part in ("all", "flap"):
            # The other region's NVA: runs beside the failover trials without sharing anything with them.
            flap = threading.Thread(target=part_flap, args=(topo, flap_region, flap_host, args.flap_probes, raw), daemon=True)
            flap.start()
        try:
            if args.part in ("all", "failover"):
                part_failover(topo, region, args.trials, configs + (["sigkill"] if args.part == "all" else []), raw)
            if args.part in ("all", "sigkill"):
                # In `all` the anchor's SIGKILL ran with its defaults trials above.
                part_sigkill(topo, region, args.trials, raw, with_anchor=args.part == "sigkill")
        finally:
            if flap is not None:
                flap.join()
            convergence.write_delay(handle.base, 0)
        log(f"lab held {time.monotonic() - started:.0f} s")
    finish(raw)
    return 0


if __name__ == "__main__":
    sys.exit(main())
