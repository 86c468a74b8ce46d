"""Benchmark 6 of issue 5 (Scale): 50 anycast prefixes on one NVA, each with its own health check.

Builds its own small topology with the lab host engine (prefix anb-scale, bridge anb-mgmt on
198.18.2.0/24: apart from the two-region lab and the Molecule scenarios), deploys the bird and
healthcheck roles to one nspawn NVA with ansible-playbook (role defaults for the timing), and
measures against two Route Server-like BIRD speakers:

- the checker's CPU over a window (utime+stime from /proc/<pid>/stat), VmRSS and VmHWM;
- for REPS withdrawals of one prefix (its backend is stopped): failure -> withdraw received by the
  peer (peer BIRD's log, microseconds) and decision -> withdraw (decision = the daemon's
  last_change_timestamp_seconds metric); meanwhile the peer is polled every ~10 ms to assert the
  other 49 routes never left (nor were replaced: same route timestamps) and that both BGP
  sessions stayed Established with the same since-timestamp.

    python bench/scale_bench.py [--seconds 90] [--reps 7] [--daemon-file FILE] [--keep]

--daemon-file runs another version of the daemon on the same deployment (for a before/after
comparison): a directory is a version of the package (e.g. `git archive HEAD~1
roles/healthcheck/files/anycast_healthcheck | tar -x -C /tmp/old`, then
--daemon-file /tmp/old/roles/healthcheck/files/anycast_healthcheck), which replaces the installed
one; a file is a single-file daemon of the versions before the package (e.g. `git show
REV:roles/healthcheck/files/anycast_healthcheck.py > /tmp/old.py`), which runs in place of the launcher.
"""
# pylint: disable=too-many-locals,too-many-statements
import argparse
import io
import json
import os
import re
import selectors
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time

import labbench
from anycast_lab.hosts import Topology, teardown

PREFIX = "anb-scale"
BRIDGE = "anb-mgmt"
N = 50
VICTIM = 0
ANYCAST = [f"10.250.1.{i + 10}/32" for i in range(N)]
BACKENDS = [(f"10.11.1.{i + 10}", 8000 + i) for i in range(N)]
NVA_ASN = 65001
TARGETS = {"cpu_percent": 1.0, "rss_mb": 25.0, "decision_to_update_s": 0.2}
DAEMON = "/usr/local/lib/anycast-healthcheck/anycast-healthcheck.py"  # the launcher the unit runs
PACKAGE = "/usr/local/lib/anycast-healthcheck/anycast_healthcheck"  # what it imports
UNIT = "anycast-healthcheck.service"


# -- the backend: one process answering HTTP on many address:port pairs (a service of the topology) --

def serve_backends(pairs, idle_timeout=75.0):
    """Answer every request with 200 'ok' like an application server (nginx's defaults): HTTP/1.1
    keep-alive unless the client asks to close or speaks HTTP/1.0, idle connections closed after
    `idle_timeout` seconds; runs until killed."""
    sel = selectors.DefaultSelector()
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n%s\r\nok\n"
    for pair in pairs:
        host, port = pair.rsplit(":", 1)
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, int(port)))
        listener.listen(512)
        listener.setblocking(False)
        sel.register(listener, selectors.EVENT_READ, None)
    print(f"listening on {len(pairs)} address:port pairs", flush=True)
    pending, last = {}, {}  # connection -> unanswered request bytes, last activity

    def close(conn):
        sel.unregister(conn)
        conn.close()
        del pending[conn], last[conn]
    while True:
        now = time.monotonic()
        for key, _mask in sel.select(timeout=1.0):
            if key.data is None:
                try:
                    conn, _addr = key.fileobj.accept()
                except OSError:
                    continue
                conn.setblocking(False)
                sel.register(conn, selectors.EVENT_READ, True)
                pending[conn], last[conn] = b"", now
                continue
            conn = key.fileobj
            try:
                data = conn.recv(4096)
            except OSError:
                data = b""
            pending[conn] += data
            last[conn] = now
            keep = bool(data)
            while keep and b"\r\n\r\n" in pending[conn]:
                request, _sep, pending[conn] = pending[conn].partition(b"\r\n\r\n")
                keep = b"HTTP/1.1" in request.split(b"\r\n", 1)[0] and b"connection: close" not in request.lower()
                try:
                    conn.send(answer % (b"" if keep else b"Connection: close\r\n"))
                except OSError:
                    keep = False
            if not keep:
                close(conn)
        for conn in [c for c, t in last.items() if now - t > idle_timeout]:
            close(conn)


# -- topology and deployment --

def peer_conf(name, address):
    return f"""# Route Server-like speaker {name} of the scale benchmark: learns only; logs route updates (us).
router id {address};
log "{{LOG}}" all;
timeformat protocol iso long us;
timeformat route iso long us;
timeformat log iso long us;
protocol device {{ }}
protocol bgp nva1 {{
  local {address} as 65515;
  neighbor 10.10.2.4 as {NVA_ASN};
  multihop;
  debug {{ states, routes }};
  ipv4 {{ import all; export none; }};
}}
"""


def spec(work):
    backend_argv = [sys.executable, os.path.abspath(__file__), "--serve-backends"]
    logs = {}
    for name, address in (("rs0", "10.10.1.4"), ("rs1", "10.10.1.5")):
        logs[name] = os.path.join(work, f"{name}.bird.log")
        with open(os.path.join(work, f"{name}.conf"), "w", encoding="utf-8") as handle:
            handle.write(peer_conf(name, address).replace("{LOG}", logs[name]))
    data = {
        "prefix": PREFIX,
        "mgmt": {"bridge": BRIDGE, "address": "198.18.2.1/24"},
        "segments": ["nvasubnet", "rssubnet", "appsubnet"],
        "nodes": [
            {"name": "nva1", "kind": "host", "mgmt_ip": "198.18.2.10", "groups": ["nva"],
             "interfaces": [{"name": "eth1", "segment": "nvasubnet", "address": "10.10.2.4/24"}],
             "routes": [{"to": "10.10.1.0/27", "via": "10.10.2.1"}, {"to": "10.11.0.0/16", "via": "10.10.2.1"}]},
            {"name": "fabric", "kind": "netns",
             "interfaces": [{"name": "eth0", "segment": "nvasubnet", "address": "10.10.2.1/24"},
                            {"name": "eth1", "segment": "rssubnet", "address": "10.10.1.1/27"},
                            {"name": "eth2", "segment": "appsubnet", "address": "10.11.1.1/24"}],
             "sysctls": {"net.ipv4.ip_forward": 1}},
            {"name": "rs0", "kind": "netns", "interfaces": [{"name": "eth0", "segment": "rssubnet", "address": "10.10.1.4/27"}],
             "routes": [{"to": "10.10.2.0/24", "via": "10.10.1.1"}],
             "services": [{"name": "bird", "kind": "bird", "config": "rs0.conf"}]},
            {"name": "rs1", "kind": "netns", "interfaces": [{"name": "eth0", "segment": "rssubnet", "address": "10.10.1.5/27"}],
             "routes": [{"to": "10.10.2.0/24", "via": "10.10.1.1"}],
             "services": [{"name": "bird", "kind": "bird", "config": "rs1.conf"}]},
            # 50 distinct backends (own address and port each); the victim's in a process of its own.
            {"name": "be", "kind": "netns",
             "interfaces": [{"name": "eth0", "segment": "appsubnet", "address": ["10.11.1.2/24"] + [f"{h}/24" for h, _p in BACKENDS]}],
             "routes": [{"to": "10.10.2.0/24", "via": "10.11.1.1"}],
             "services": [{"name": "web", "kind": "command",
                           "argv": backend_argv + [f"{h}:{p}" for i, (h, p) in enumerate(BACKENDS) if i != VICTIM]},
                          {"name": "victim", "kind": "command", "argv": backend_argv + ["%s:%d" % BACKENDS[VICTIM]]}]},
        ],
    }
    path = os.path.join(work, "topology.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1)
    return path, logs


def deploy(topo, work):
    prefixes = [{"prefix": p, "checks": [{"type": "http", "url": f"http://{h}:{port}/health"}]} for p, (h, port) in zip(ANYCAST, BACKENDS)]
    variables = {"bird_local_asn": NVA_ASN, "bird_local_address": "10.10.2.4", "bird_route_server_asn": 65515,
                 "bird_route_server_ips": ["10.10.1.4", "10.10.1.5"], "bird_anycast_prefixes": ANYCAST,
                 "healthcheck_prefixes": prefixes}
    playbook = os.path.join(work, "deploy.yml")
    with open(playbook, "w", encoding="utf-8") as handle:
        handle.write("- hosts: nva\n  gather_facts: false\n  roles: [anycast.nva.bird, anycast.nva.healthcheck]\n")
    with open(os.path.join(work, "vars.json"), "w", encoding="utf-8") as handle:
        json.dump(variables, handle)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(labbench.ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    started = time.monotonic()
    proc = subprocess.run(["ansible-playbook", "-i", topo.inventory_path, "-e", "@" + os.path.join(work, "vars.json"), playbook],
                          capture_output=True, text=True, check=False, cwd=labbench.ROOT, env=env)
    if proc.returncode:
        raise SystemExit(f"ansible-playbook failed:\n{(proc.stdout + proc.stderr)[-4000:]}")
    print(f"bird + healthcheck roles deployed in {time.monotonic() - started:.0f} s", flush=True)


def ssh(topo, command, stdin=None):
    """Run a shell command on the NVA as root over SSH (stdin: bytes to feed)."""
    host = topo.host("nva1")
    argv = ["ssh", "-i", topo.key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "-o", "BatchMode=yes", f"root@{host.mgmt_ip}", command]
    proc = subprocess.run(argv, input=stdin, capture_output=True, check=False)
    if proc.returncode:
        raise SystemExit(f"nva1: {command} failed: {proc.stderr.decode(errors='replace')}")
    return proc.stdout.decode()


# -- the peer --

class Peer:
    """A persistent connection to a peer BIRD's control socket."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(path)
        self.lines = self.sock.makefile("r", encoding="utf-8", errors="replace")
        self.lines.readline()

    def ask(self, command):
        self.sock.sendall(command.encode() + b"\n")
        reply = []
        while True:
            line = self.lines.readline()
            if not line:
                raise RuntimeError("BIRD closed the control socket")
            reply.append(line.rstrip("\n"))
            if re.match(r"^\d{4} ", line):
                return reply

    def routes(self):
        """prefix -> the route's since-timestamp (changes if it is withdrawn and learnt again)."""
        found = {}
        for line in self.ask("show route protocol nva1"):
            match = re.search(r"(10\.250\.1\.\d+/32)\s+\w+\s+\[nva1 (\S+ \S+)", line)
            if match:
                found[match.group(1)] = match.group(2)
        return found

    def session(self):
        """(state, since) of the BGP session with the NVA."""
        for line in self.ask("show protocols nva1"):
            fields = line[5:].split() if line[:4].isdigit() else line.split()
            if len(fields) >= 7 and fields[0] == "nva1":  # nva1 BGP --- up DATE TIME Established
                return fields[6], " ".join(fields[4:6])
        return None, None

    def close(self):
        self.sock.close()


class Watcher(threading.Thread):
    """Polls the peer until stopped: records when the victim's route leaves and any change to the others."""

    def __init__(self, path, others):
        super().__init__(daemon=True)
        self.peer = Peer(path)
        self.others = others  # prefix -> since, the reference
        self.running = True
        self.polls = 0
        self.violations = []
        self.gone_at = None
        self.watch = None

    def run(self):
        while self.running:
            routes = self.peer.routes()
            now = time.time()
            self.polls += 1
            for prefix, since in self.others.items():
                if not same_time(routes.get(prefix), since):
                    self.violations.append((now, prefix, since, routes.get(prefix)))
            if self.watch and self.gone_at is None and self.watch not in routes:
                self.gone_at = now
            time.sleep(0.01)

    def stop(self):
        self.running = False
        self.join()
        self.peer.close()


def stamp(text):
    """BIRD's 'iso long us' time as epoch seconds."""
    return time.mktime(time.strptime(text[:19], "%Y-%m-%d %H:%M:%S")) + float("0" + text[19:26])


def same_time(one, two):
    # BIRD prints since-times converted from its monotonic clock: the same instant jitters by microseconds.
    return one is not None and two is not None and abs(stamp(one) - stamp(two)) < 0.005


def withdraw_times(log_path, prefix, after):
    """Times (epoch) at which the peer's BIRD logged the withdrawal of `prefix`, after `after`."""
    times = []
    with open(log_path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if prefix in line and "removed" in line:
                when = stamp(line)
                if when >= after:
                    times.append(when)
    return times


def metric(text, name, prefix):
    match = re.search(r'^anycast_healthcheck_%s\{prefix="%s"\} (\S+)$' % (name, re.escape(prefix)), text, re.MULTILINE)
    return float(match.group(1)) if match else None


def wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


# -- measurements --

def measure_cpu(topo, seconds):
    """utime+stime of the daemon over `seconds` (one SSH command: both samples on the NVA's clock)."""
    script = ("pid=$(systemctl show -p MainPID --value %s); " % UNIT
              + "read -r up0 _ < /proc/uptime; s0=$(cut -d' ' -f14,15 /proc/$pid/stat); sleep %d; " % seconds
              + "read -r up1 _ < /proc/uptime; s1=$(cut -d' ' -f14,15 /proc/$pid/stat); "
              + "echo $pid $up0 $s0 $up1 $s1 $(getconf CLK_TCK); grep -E '^Vm(RSS|HWM):' /proc/$pid/status")
    out = ssh(topo, script).split("\n")
    pid, up0, u0, k0, up1, u1, k1, tck = out[0].split()
    wall = float(up1) - float(up0)
    cpu = (int(u1) + int(k1) - int(u0) - int(k0)) / int(tck)
    mem = {line.split(":")[0]: int(line.split()[1]) / 1024 for line in out[1:] if line}
    return {"pid": int(pid), "wall_s": round(wall, 2), "cpu_s": cpu, "user_s": (int(u1) - int(u0)) / int(tck),
            "system_s": (int(k1) - int(k0)) / int(tck), "cpu_percent": round(100 * cpu / wall, 3),
            "rss_mb": round(mem["VmRSS"], 2), "hwm_mb": round(mem["VmHWM"], 2)}


def install_daemon(topo, path):
    """Run another version of the daemon: a package directory replaces the installed package, a
    single file (the daemon before it became a package) replaces the launcher."""
    if os.path.isdir(path):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name in sorted(os.listdir(path)):
                if name.endswith(".py"):
                    tar.add(os.path.join(path, name), arcname=name)
        ssh(topo, f"rm -rf {PACKAGE} && mkdir -p {PACKAGE} && tar -xf - -C {PACKAGE} --no-same-owner && "
                  f"chmod 0644 {PACKAGE}/*.py && systemctl restart {UNIT}", stdin=buf.getvalue())
    else:
        with open(path, "rb") as handle:
            ssh(topo, f"cat > {DAEMON} && systemctl restart {UNIT}", stdin=handle.read())


def run(args):
    work = tempfile.mkdtemp(prefix="anb-scale.")
    os.chmod(work, 0o755)
    spec_path, logs = spec(work)
    topo = Topology.from_file(spec_path, os.path.join(work, "lab"))
    figures = {}
    try:
        started = time.monotonic()
        topo.up()
        print(f"topology up in {time.monotonic() - started:.0f} s", flush=True)
        deploy(topo, work)
        if args.daemon_file:
            install_daemon(topo, args.daemon_file)
            print(f"running the daemon from {args.daemon_file}", flush=True)
        peers = {name: Peer(topo.bird_socket(name, "bird")) for name in ("rs0", "rs1")}
        wait(lambda: all(len(p.routes()) == N for p in peers.values()), args.learn_timeout, f"both peers to learn the {N} anycast routes")
        print(f"both peers hold the {N} routes", flush=True)
        time.sleep(args.settle)

        cpu = measure_cpu(topo, args.seconds)
        print(f"CPU {cpu['cpu_percent']:.2f} % of one core over {cpu['wall_s']:.0f} s (user {cpu['user_s']:.2f} s, system {cpu['system_s']:.2f} s); "
              f"VmRSS {cpu['rss_mb']:.1f} MB, VmHWM {cpu['hwm_mb']:.1f} MB", flush=True)

        sessions = {name: p.session() for name, p in peers.items()}
        victim = ANYCAST[VICTIM]
        others = {name: {k: v for k, v in p.routes().items() if k != victim} for name, p in peers.items()}
        watchers = {name: Watcher(topo.bird_socket(name, "bird"), others[name]) for name in peers}
        for watcher in watchers.values():
            watcher.start()
        reps = []
        for rep in range(args.reps):
            for watcher in watchers.values():
                watcher.watch, watcher.gone_at = victim, None
            time.sleep(0.2 + 0.4 * rep / max(1, args.reps))  # spread the failure over the probe interval
            failed_at = time.time()
            topo.service_stop("be", "victim")
            wait(lambda: all(w.gone_at for w in watchers.values()), 10, f"the peers to lose {victim}")
            time.sleep(0.3)  # the peers' logs are written by now
            decided = metric(ssh(topo, "curl -s http://127.0.0.1:9469/metrics"), "last_change_timestamp_seconds", victim)
            received = min(min(withdraw_times(logs[name], victim, failed_at) or [float("inf")]) for name in peers)
            one = {"failure_to_withdraw_s": round(received - failed_at, 4), "decision_to_update_s": round(received - decided, 4),
                   "failure_to_decision_s": round(decided - failed_at, 4),
                   "polled_gone_s": round(max(w.gone_at for w in watchers.values()) - failed_at, 4)}
            reps.append(one)
            print(f"rep {rep + 1}: failure -> withdraw at the peer {one['failure_to_withdraw_s']:.3f} s, "
                  f"decision -> withdraw {one['decision_to_update_s'] * 1000:.1f} ms (seen by polling after {one['polled_gone_s']:.3f} s)", flush=True)
            for watcher in watchers.values():
                watcher.watch = None
            topo.service_start("be", "victim")
            wait(lambda: all(victim in p.routes() for p in peers.values()), 30, f"{victim} to come back")
        for watcher in watchers.values():
            watcher.stop()
        after = {name: p.session() for name, p in peers.items()}
        violations = [v for w in watchers.values() for v in w.violations]
        untouched = not violations and all(after[n][0] == "Established" and same_time(after[n][1], sessions[n][1]) for n in peers)
        polls = sum(w.polls for w in watchers.values())
        print(f"sessions before {sessions}, after {after}; {polls} polls of the peers, {len(violations)} changes to the other {N - 1} routes", flush=True)
        for peer in peers.values():
            peer.close()
        figures = {"cpu": cpu, "reps": reps, "sessions_before": sessions, "sessions_after": after, "violations": violations[:20],
                   "polls": polls, "untouched": untouched, "prefixes": N, "daemon_file": args.daemon_file,
                   "check": "http://10.11.1.X:80XX/health (one backend address and port per prefix)", "timing": "role defaults",
                   "backend": "HTTP/1.1 keep-alive, idle timeout 75 s (nginx defaults)"}
    finally:
        if not args.keep:
            topo.down()
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept: state {work}/lab (down: .venv/bin/python -m anycast_lab.hosts down --state {work}/lab)")
    return figures


def report(figures, label):
    cpu, reps = figures["cpu"], figures["reps"]
    f2w = labbench.median_worst([r["failure_to_withdraw_s"] for r in reps])
    d2u = labbench.median_worst([r["decision_to_update_s"] for r in reps])
    rows = [
        labbench.row(f"checker CPU, {N} prefixes x 1 check{label}", cpu["cpu_percent"], f"< {TARGETS['cpu_percent']}",
                     cpu["cpu_percent"] < TARGETS["cpu_percent"], unit="% of a core"),
        labbench.row(f"checker VmRSS{label}", cpu["rss_mb"], f"< {TARGETS['rss_mb']}", cpu["rss_mb"] < TARGETS["rss_mb"], unit="MB"),
        labbench.row(f"checker VmHWM{label}", cpu["hwm_mb"], f"< {TARGETS['rss_mb']}", cpu["hwm_mb"] < TARGETS["rss_mb"], unit="MB"),
        labbench.row(f"failure -> withdraw at the peer, median (worst {f2w[1]:.3f}){label}", round(f2w[0], 3), None, None, unit="s"),
        labbench.row(f"decision -> withdraw at the peer, median (worst {d2u[1]:.3f}){label}", round(d2u[0], 3),
                     f"< {TARGETS['decision_to_update_s']}", d2u[1] < TARGETS["decision_to_update_s"], unit="s"),
        labbench.row(f"other {N - 1} routes and BGP sessions untouched{label}", "yes" if figures["untouched"] else "NO", "yes", figures["untouched"]),
    ]
    print("\n%-70s %12s %10s %s" % ("metric", "ours", "target", "met"))
    for r in rows:
        print("%-70s %12s %10s %s" % (r["metric"], r["ours"], r["target"] or "-", {True: "yes", False: "NO", None: "-"}[r["met"]]))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=int, default=90, help="CPU measurement window (>= 60 for the figure of record)")
    parser.add_argument("--reps", type=int, default=7, help="withdrawals of the victim prefix")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds after every route is learnt before measuring")
    parser.add_argument("--daemon-file", help="run this version of the daemon instead of the role's (before/after): "
                        "a package directory, or a single-file daemon of earlier versions")
    parser.add_argument("--name", default="scale", help="results file name (bench/results/NAME.json)")
    parser.add_argument("--learn-timeout", type=float, default=90)
    parser.add_argument("--keep", action="store_true", help="leave the topology up (debugging)")
    parser.add_argument("--down", action="store_true", help="remove a leftover topology of a crashed run and exit")
    parser.add_argument("--serve-backends", nargs="+", metavar="IP:PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_backends:
        serve_backends(args.serve_backends)
        return
    if args.down:
        teardown(PREFIX, mgmt_bridge=BRIDGE)
        return
    figures = run(args)
    rows = report(figures, "")
    labbench.save(args.name, rows, **figures)


if __name__ == "__main__":
    main()
