"""Recordings of the lab's health checkers: scraped metrics, loaded into a short-lived Prometheus afterwards.

A recording is a gzip-compressed JSON lines file: a `meta` line, then `scrape` lines {t, region, nva, ok, text} (the
checker's exposition text, empty when the scrape failed), `event` lines {t, text} (what was done to the lab) and `test`
lines {nodeid, start, end, outcome} (the e2e tests that ran meanwhile), in the order they came.

Scrapes of a lab NVA run inside the NVA (curl of the checker's 127.0.0.1:9469 in a shell loop, one SSH session per NVA,
stream_lab_scrapes), so the metrics port stays private; poll_urls scrapes over HTTP instead (e.g. the healthcheck role's
metrics forwarder). prometheus_over loads a recording into a Prometheus server on 127.0.0.1 (promtool tsdb
create-blocks-from openmetrics, then prometheus over those blocks) and yields its range query.

Users: bench/dashboard_picture.py (the README's dashboard picture) and the e2e tests' opt-in alert report
(anycast_lab.alert_report, tests/e2e/conftest.py). Needs the Debian package prometheus (promtool, prometheus) to load.
"""
import contextlib
import gzip
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

JOB = "anycast-healthcheck"
METRICS_URL = "http://127.0.0.1:9469/metrics"

SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?$')
LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


def log(message):
    print(time.strftime("%H:%M:%S ") + message, file=sys.stderr, flush=True)


# -- the Prometheus text format -------------------------------------------------------------------------------------

def _unescape(value):
    return re.sub(r'\\(.)', lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def _escape(value):
    return value.replace("\\", r"\\").replace('"', r'\"').replace("\n", r"\n")


def parse_exposition(text):
    """[(name, {label: value}, value)] of a Prometheus text exposition (comments and blank lines skipped)."""
    samples = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = SAMPLE_RE.match(line)
        if not match:
            raise ValueError(f"not a sample line: {line!r}")
        labels, rest = {}, match.group(3) or ""
        while rest.strip():
            label = LABEL_RE.match(rest)
            if not label:
                raise ValueError(f"bad labels in {line!r}")
            labels[label.group(1)] = _unescape(label.group(2))
            rest = rest[label.end():]
        samples.append((match.group(1), labels, float(match.group(4))))
    return samples


def _series(name, labels):
    inner = ",".join(f'{key}="{_escape(value)}"' for key, value in sorted(labels.items()))
    return f"{name}{{{inner}}}"


def to_openmetrics(recording):
    """The recording as OpenMetrics text with timestamps, for `promtool tsdb create-blocks-from openmetrics`.

    Every scraped sample gets the target labels the scrape configuration gives (job, instance, region, nva), and every
    scrape an `up` sample (0 when it failed), as Prometheus would have stored them. All families are typed unknown.
    """
    families = {}
    for scrape in recording["scrapes"]:
        target = {"job": JOB, "instance": scrape["nva"], "region": scrape["region"], "nva": scrape["nva"]}
        points = [("up", {}, 1.0 if scrape["ok"] else 0.0)] + (parse_exposition(scrape["text"]) if scrape["ok"] else [])
        for name, labels, value in points:
            series = _series(name, dict(labels, **target))
            families.setdefault(name, {}).setdefault(series, []).append((scrape["t"], value))
    lines = []
    for name in sorted(families):
        lines.append(f"# TYPE {name} unknown")
        for series, points in sorted(families[name].items()):
            lines.extend(f"{series} {value!r} {stamp:.3f}" for stamp, value in sorted(points))
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


# -- recordings -----------------------------------------------------------------------------------------------------

def load_recording(path):
    """{'meta': {...}, 'scrapes': [{t, region, nva, ok, text}], 'events': [{t, text}], 'tests': [...]} of a recording file."""
    recording = {"meta": {}, "scrapes": [], "events": [], "tests": []}
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            item = json.loads(line)
            kind = item.pop("kind")
            if kind == "meta":
                recording["meta"] = item
            else:
                recording.setdefault(kind + "s", []).append(item)
    if not recording["scrapes"]:
        raise ValueError(f"{path}: no scrapes recorded")
    return recording


class Recorder:
    """Writes a recording: a meta line, then scrapes, events and tests as they come (gzip JSON lines)."""

    def __init__(self, path, meta):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.path = path
        self.handle = gzip.open(path, "wt", encoding="utf-8")
        self.lock = threading.Lock()
        self.counts = {}
        self.write("meta", **meta)

    def write(self, kind, **item):
        with self.lock:
            if self.handle.closed:
                return
            self.handle.write(json.dumps(dict(item, kind=kind)) + "\n")
            if kind == "scrape":
                self.counts[item["nva"]] = self.counts.get(item["nva"], 0) + 1

    def close(self):
        with self.lock:
            self.handle.close()


# -- scraping ---------------------------------------------------------------------------------------------------------

def scrapes_from_stream(lines):
    """(time, ok, text) of each scrape in the output of the NVA's scrape loop (see stream_lab_scrapes)."""
    stamp, body, failed = None, [], False
    for line in lines:
        if line.startswith("#@ "):
            word = line[3:].strip()
            if word == "end" and stamp is not None:
                yield stamp, not failed, "" if failed else "".join(body)
                stamp, body, failed = None, [], False
            elif word == "failed":
                failed = True
            elif word != "end":
                stamp, body, failed = float(word), [], False
        elif stamp is not None:
            body.append(line)


def scrape_loop(url, interval):
    """The shell loop that runs on an NVA: the time, the metrics (or a failure mark), an end mark, forever."""
    # The marks start on a line of their own whatever curl printed last.
    return (f'while :; do printf "#@ %s\\n" "$(date +%s.%N)"; curl -sf -m 2 {shlex.quote(url)} || printf "\\n#@ failed\\n"; '
            f'printf "\\n#@ end\\n"; sleep {interval:g}; done')


def stream_lab_scrapes(topo, nva, region, interval, url, recorder, stop, keep_up=False):  # pylint: disable=too-many-arguments
    """Scrape one NVA's checker from inside the NVA until `stop` is set: an SSH session running scrape_loop.

    keep_up: the NVA may go away meanwhile (an e2e test stops it): a session that ends or hangs is started again, and
    every interval without a scrape is recorded as a failed scrape (`up` 0), as Prometheus would have stored it.
    """
    # pylint: disable=import-outside-toplevel
    from anycast_lab.hosts.host import ssh_argv
    host = topo.host(nva)
    seen, filled, current = [time.time()], [0.0], [None]

    def watch():
        while not stop.wait(min(1.0, interval)):
            now, proc = time.time(), current[0]
            if keep_up and now - max(seen[0], filled[0]) > 1.5 * interval:
                recorder.write("scrape", t=now, region=region, nva=nva, ok=False, text="")
                filled[0] = now
            if keep_up and proc is not None and proc.poll() is None and now - seen[0] > 3 * interval + 10:
                proc.terminate()  # a session to an NVA that went away without closing it
        if current[0] is not None and current[0].poll() is None:
            current[0].terminate()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    while not stop.is_set():
        with subprocess.Popen(ssh_argv(host.key, host.mgmt_ip, ["sh", "-c", scrape_loop(url, interval)]), stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True) as proc:
            current[0] = proc
            if stop.is_set() or not watcher.is_alive():
                proc.terminate()
            for stamp, ok, text in scrapes_from_stream(proc.stdout):
                seen[0] = time.time()
                recorder.write("scrape", t=stamp, region=region, nva=nva, ok=ok, text=text)
        if not keep_up:
            break
        stop.wait(interval)


def poll_urls(name, url, region, interval, recorder, stop):  # pylint: disable=too-many-arguments
    """Scrape one checker over HTTP until `stop` is set."""
    while not stop.is_set():
        stamp = time.time()
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                text, ok = resp.read().decode("utf-8"), True
        except OSError:
            text, ok = "", False
        recorder.write("scrape", t=stamp, region=region, nva=name, ok=ok, text=text)
        stop.wait(max(0.0, interval - (time.time() - stamp)))


class LabScrapes:
    """Every given lab NVA scraped in the background (stream_lab_scrapes, one thread each) until stop()."""

    def __init__(self, topo, nvas, interval, recorder, url=METRICS_URL, keep_up=False):  # pylint: disable=too-many-arguments
        """nvas: [(NVA name, region name)]."""
        self.stop_event = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(topo, nva, region, interval, url, recorder, keep_up), daemon=True)
                        for nva, region in nvas]

    def _run(self, topo, nva, region, interval, url, recorder, keep_up):  # pylint: disable=too-many-arguments
        try:
            stream_lab_scrapes(topo, nva, region, interval, url, recorder, self.stop_event, keep_up=keep_up)
        except Exception as exc:  # pylint: disable=broad-except  # one NVA's scrapes, not the caller, stop
            log(f"scrapes of {nva} stopped: {exc}")

    def start(self):
        for thread in self.threads:
            thread.start()
        return self

    def stop(self, timeout=10.0):
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=timeout)


# -- a short-lived Prometheus over a recording --------------------------------------------------------------------------

def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def prometheus_over(recording, workdir):
    """A Prometheus server on 127.0.0.1 whose storage holds the recording; yields its query_range function."""
    for tool in ("promtool", "prometheus"):
        if not shutil.which(tool):
            raise RuntimeError(f"{tool} is missing: install the Debian package prometheus (make deps)")
    source, blocks = os.path.join(workdir, "recording.om"), os.path.join(workdir, "data")
    with open(source, "w", encoding="utf-8") as handle:
        handle.write(to_openmetrics(recording))
    proc = subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", source, blocks],
                          capture_output=True, text=True, check=False, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"promtool could not load the recording: {proc.stdout}{proc.stderr}")
    config = os.path.join(workdir, "prometheus.yml")
    with open(config, "w", encoding="utf-8") as handle:
        handle.write("global: {}\n")
    port = _free_port()
    lookback = max(2.0, 2.5 * recording["meta"].get("interval", 1.0))
    argv = ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={blocks}", f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=100y", f"--query.lookback-delta={lookback:.0f}s"]
    with open(os.path.join(workdir, "prometheus.log"), "w", encoding="utf-8") as out:
        server = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)  # pylint: disable=consider-using-with
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(base + "/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                with open(os.path.join(workdir, "prometheus.log"), encoding="utf-8") as handle:
                    raise RuntimeError("prometheus did not start:\n" + handle.read()[-2000:])
            time.sleep(0.2)

        def query_range(expr, start, end, step):
            params = urllib.parse.urlencode({"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"})
            with urllib.request.urlopen(f"{base}/api/v1/query_range?{params}", timeout=60) as resp:
                body = json.load(resp)
            if body.get("status") != "success":
                raise RuntimeError(f"query failed: {expr}: {body}")
            return body["data"]["result"]
        yield query_range
    finally:
        server.terminate()
        server.wait(timeout=30)
