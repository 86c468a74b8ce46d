"""A steady client: HTTP GETs at a fixed rate, one TCP connection each, one JSON line per request.

Runs inside the on-premises client namespace (`Lab.traffic()` starts it there):
    python -m anycast_lab.regions.traffic --url http://10.250.0.10/ --rate 25 --duration 30
Each line: {"t": start (epoch s), "ok": bool, "body": answer or error}. A fresh connection per request
gives each one a new source port, so ECMP spreads them as it would spread real clients.
"""
import argparse
import collections
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse

from ..paths import LAB_DIR
from . import plan


def fetch(url, timeout):
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    try:
        conn.request("GET", parts.path or "/")
        answer = conn.getresponse()
        body = answer.read().decode(errors="replace").strip()
        return answer.status == 200, body if answer.status == 200 else f"HTTP {answer.status}"
    except (OSError, http.client.HTTPException) as exc:
        return False, type(exc).__name__
    finally:
        conn.close()


def run(url, rate, duration, timeout, count=0, out=sys.stdout):  # pylint: disable=too-many-arguments
    """Send requests every 1/rate s (each in its own thread, so a slow answer does not slow the rate)."""
    lock = threading.Lock()

    def one(started):
        ok, body = fetch(url, timeout)
        with lock:
            out.write(json.dumps({"t": started, "ok": ok, "body": body}) + "\n")
            out.flush()

    begin = time.time()
    threads = []
    index = 0
    try:
        while (duration <= 0 or time.time() - begin < duration) and (count <= 0 or index < count):
            due = begin + index / rate
            time.sleep(max(0.0, due - time.time()))
            thread = threading.Thread(target=one, args=(time.time(),), daemon=True)
            thread.start()
            threads.append(thread)
            threads = [item for item in threads if item.is_alive()]
            index += 1
    except KeyboardInterrupt:
        pass  # stop sending; the requests under way are still recorded below
    for thread in threads:
        thread.join(timeout + 1)


def _argv(rate, address, port, timeout, count=0):
    return ["ip", "netns", "exec", plan.CLIENT_NS, sys.executable, "-m", "anycast_lab.regions.traffic",
            "--url", f"http://{address}:{port}/", "--rate", str(rate), "--timeout", str(timeout), "--count", str(count)]


def _records(out):
    return sorted((json.loads(line) for line in out.splitlines() if line.strip()), key=lambda record: record["t"])


class Traffic:
    """Steady requests from the on-premises client, in the background: Traffic(...), ..., stop() -> records."""

    def __init__(self, rate=25.0, address=plan.ANYCAST_IP, port=plan.BACKEND_PORT, timeout=0.5):
        # pylint: disable-next=consider-using-with  # stopped by stop()
        self.proc = subprocess.Popen(_argv(rate, address, port, timeout), stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=LAB_DIR))
        # Read the records as they come: a full pipe (64 KiB, about 30 s at 25 requests/s) would block the client.
        self.lines = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self.reader.start()

    def stop(self):
        """Stop sending (requests under way finish) and return every record, oldest first."""
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=30)
        self.reader.join(timeout=10)
        return _records("".join(self.lines))


class RouteSwitch:
    """Watches on-premises' route to the anycast IP in the background until its next hops change.

    `before`: the last poll that still saw the first next hops; `changed`: the first that did not. A connection open
    between the two moves to other NVAs mid-way; when they are in another region, none of them knows it.
    """

    def __init__(self, address=plan.ANYCAST_IP, poll=0.02):
        self.route = ["ip", "-n", plan.ONPREM_NS, "route", "show", f"{address}/32"]
        self.poll = poll
        self.changed = None
        self._stop = threading.Event()
        self.before = time.time()
        self._initial = self._next_hops()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _next_hops(self):
        out = subprocess.run(self.route, capture_output=True, text=True, check=True).stdout
        return sorted(re.findall(r"via (\S+) dev (\S+)", out))

    def _watch(self):
        while not self._stop.is_set():
            polled = time.time()
            if self._next_hops() != self._initial:
                self.changed = time.time()
                return
            self.before = polled
            time.sleep(self.poll)

    def stop(self):
        self._stop.set()
        self._thread.join(5)

    def open_at_switch(self, records, timeout):
        """Failed requests that may have been open when the route changed (started within `timeout` before it)."""
        if self.changed is None:
            return []
        return [record for record in records if not record["ok"] and self.before - timeout <= record["t"] <= self.changed]


def settled(records, answer):
    """Start time of the first request from which every answer is `answer`; None if the last one is not."""
    since = None
    for record in records:
        if record["ok"] and record["body"] == answer:
            since = record["t"] if since is None else since
        else:
            since = None
    return since


def requests(count, address=plan.ANYCAST_IP, port=plan.BACKEND_PORT, rate=50.0, timeout=1.0):
    """Send `count` requests from the on-premises client now; Counter of answers ('failed' for errors)."""
    proc = subprocess.run(_argv(rate, address, port, timeout, count), capture_output=True, text=True, check=True,
                          env=dict(os.environ, PYTHONPATH=LAB_DIR))
    return summary(_records(proc.stdout))


def summary(records):
    """Counter of answers ('failed' for errors)."""
    return collections.Counter(record["body"] if record["ok"] else "failed" for record in records)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--rate", type=float, default=25.0, help="requests per second (default %(default)s)")
    parser.add_argument("--duration", type=float, default=0, help="seconds; 0 = until killed")
    parser.add_argument("--count", type=int, default=0, help="stop after this many requests; 0 = no limit")
    parser.add_argument("--timeout", type=float, default=0.5, help="seconds per request (default %(default)s)")
    args = parser.parse_args(argv)
    # stop() sends SIGINT; a parent started in the background (nohup, `cmd &`) leaves it ignored otherwise.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    run(args.url, args.rate, args.duration, args.timeout, args.count)


if __name__ == "__main__":
    main()
