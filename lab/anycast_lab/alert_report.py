"""Which alert of the collection's rules fired during which e2e test: evaluated over a recording of the lab's checkers.

The rules (monitoring/prometheus/anycast-nva.rules.yml) are evaluated the way Prometheus evaluates them, over a
recording (anycast_lab.metrics_recorder) loaded into a short-lived Prometheus: each alert's expression as a range query
at the recording's scrape interval; a series is pending from its first point and fires once it has been present at
every step for the rule's `for:` (a gap longer than 1.5 steps starts again), until its last point. Prometheus cannot
backfill alerting rules (promtool tsdb create-blocks-from rules takes recording rules only), hence this.

firing_intervals, alerts_by_test and markdown are pure (tests/unit/monitoring/test_alert_report.py); evaluate runs the
queries; E2eAlerts is the e2e session's recorder (tests/e2e/conftest.py, opt-in by ANYCAST_E2E_ALERTS=<dir>).
"""
import os
import re
import tempfile
import time

import yaml

from anycast_lab.metrics_recorder import METRICS_URL, LabScrapes, Recorder, load_recording, log, prometheus_over
from anycast_lab.paths import REPO

RULES = os.path.join(REPO, "monitoring", "prometheus", "anycast-nva.rules.yml")
OUTSIDE = "(outside any test: session setup or teardown)"
SHOWN = ("region", "nva", "prefix")
HIDDEN = ("job", "instance", "severity")  # the same for every alert of an NVA, or the rule's own
UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def duration(text):
    """Seconds of a Prometheus duration ('90s', '5m', '1h30m'; None or '' is 0)."""
    if not text:
        return 0.0
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)", str(text))
    if not parts or "".join(n + u for n, u in parts) != str(text):
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return sum(float(number) * UNITS[unit] for number, unit in parts)


def load_rules(path=RULES):
    """[{'alert', 'expr', 'for', 'labels'}] of every alerting rule of a rules file (`for` in seconds)."""
    with open(path, encoding="utf-8") as handle:
        groups = yaml.safe_load(handle)["groups"]
    return [{"alert": rule["alert"], "expr": rule["expr"], "for": duration(rule.get("for")), "labels": rule.get("labels") or {}}
            for group in groups for rule in group["rules"] if "alert" in rule]


def firing_intervals(points, hold, step):
    """[(fired, until)] of one alert series: `points` the times its expression returned it (any order).

    A run of points no further apart than 1.5 steps is one pending episode; it fires at its first point at least
    `hold` seconds after the episode began, and stays firing until the episode's last point.
    """
    found, run = [], []
    for stamp in sorted(points) + [None]:
        if run and (stamp is None or stamp - run[-1] > 1.5 * step):
            fired = next((t for t in run if t - run[0] >= hold), None)
            if fired is not None:
                found.append((fired, run[-1]))
            run = []
        if stamp is not None:
            run.append(stamp)
    return found


def alerts_by_test(alerts, tests):
    """Rows of which alert fired during which test.

    alerts: [{'alert', 'labels', 'intervals': [(fired, until)]}]; tests: [{'nodeid', 'start', 'end', ...}].
    A row per alert, label set and test whose window (setup to teardown) overlaps a firing interval, with the first
    time it was firing in that window ('already' when it fired before the test began); intervals no test overlaps
    are rows of OUTSIDE. Rows in time order: {'alert', 'labels', 'test', 'fired', 'already'}.
    """
    rows = {}
    for alert in alerts:
        key_labels = tuple(sorted(alert["labels"].items()))
        for fired, until in alert["intervals"]:
            hit = False
            for test in tests:
                if fired <= test["end"] and until >= test["start"]:
                    hit = True
                    first = max(fired, test["start"])
                    key = (alert["alert"], key_labels, test["nodeid"])
                    if key not in rows or first < rows[key]["fired"]:
                        rows[key] = {"alert": alert["alert"], "labels": dict(key_labels), "test": test["nodeid"], "fired": first,
                                     "already": fired < test["start"]}
            if not hit:
                key = (alert["alert"], key_labels, OUTSIDE)
                if key not in rows or fired < rows[key]["fired"]:
                    rows[key] = {"alert": alert["alert"], "labels": dict(key_labels), "test": OUTSIDE, "fired": fired, "already": False}
    return sorted(rows.values(), key=lambda row: (row["fired"], row["alert"], sorted(row["labels"].items()), row["test"]))


def markdown(rows, tests, start, meta):
    """alerts.md: the table of alerts per test (offsets in seconds from `start`, the session's start), then the tests."""
    def offset(stamp):
        return f"{stamp - start:+.0f} s"
    window = {test["nodeid"]: test for test in tests}
    lines = [f"# Alerts during the e2e run of {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(start))}", "",
             f"Rules: {meta.get('rules', RULES)}, evaluated over the checkers' metrics of {meta.get('source', 'the lab')} "
             f"(a scrape every {meta.get('interval', '?')} s; scrapes per NVA: {meta.get('counts', {})}). "
             "Times are offsets from the session's start; 'in test' is from the test's setup "
             "('already' = firing since before the test began).", ""]
    if rows:
        lines += ["| alert | region | nva | prefix | other labels | test | first fired | in test |", "|---|---|---|---|---|---|---|---|"]
        for row in rows:
            labels = row["labels"]
            into = "already" if row["already"] else (f"{row['fired'] - window[row['test']]['start']:+.0f} s" if row["test"] in window else "")
            other = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k not in SHOWN + HIDDEN)
            lines.append(f"| {row['alert']} | {' | '.join(labels.get(name, '') for name in SHOWN)} | {other} | "
                         f"{row['test']} | {offset(row['fired'])} | {into} |")
    else:
        lines.append("No alert fired.")
    lines += ["", "## Tests", "", "| test | outcome | from | to |", "|---|---|---|---|"]
    lines += [f"| {t['nodeid']} | {t.get('outcome', '')} | {offset(t['start'])} | {offset(t['end'])} |" for t in tests]
    return "\n".join(lines) + "\n"


def evaluate(recording, rules, workdir):
    """[{'alert', 'labels', 'intervals'}] of every alert series that fired over the recording (a short-lived Prometheus)."""
    stamps = [scrape["t"] for scrape in recording["scrapes"]]
    start, end, step = min(stamps), max(stamps), float(recording["meta"].get("interval", 1.0))
    found = []
    with prometheus_over(recording, workdir) as query_range:
        for rule in rules:
            for result in query_range(rule["expr"], start, end, step):
                labels = {k: v for k, v in result["metric"].items() if k != "__name__"}
                intervals = firing_intervals([float(t) for t, _v in result["values"]], rule["for"], step)
                if intervals:
                    found.append({"alert": rule["alert"], "labels": dict(labels, **rule["labels"]), "intervals": intervals})
    return found


def report(recording, rules_path=RULES):
    """alerts.md's text of a recording with its tests."""
    stamps = [scrape["t"] for scrape in recording["scrapes"]]
    with tempfile.TemporaryDirectory(prefix="anycast-e2e-alerts-") as workdir:
        alerts = evaluate(recording, load_rules(rules_path), workdir)
    tests = sorted(recording.get("tests", []), key=lambda test: test["start"])
    counts = {}
    for scrape in recording["scrapes"]:
        counts[scrape["nva"]] = counts.get(scrape["nva"], 0) + 1
    shown = os.path.relpath(rules_path, REPO) if os.path.abspath(rules_path).startswith(REPO + os.sep) else rules_path
    meta = dict(recording["meta"], counts=counts, rules=shown)
    return markdown(alerts_by_test(alerts, tests), tests, min(stamps + [test["start"] for test in tests]), meta)


INTERVAL = 2.0  # seconds between two scrapes of a checker during the e2e tests


class E2eAlerts:
    """The e2e session's opt-in recording: every lab NVA's checker scraped in the background, the tests' windows noted,
    alerts.md written at the end. Nothing it does raises: errors are logged (a test never fails because of it)."""

    def __init__(self, directory, interval=INTERVAL, url=METRICS_URL):
        self.directory, self.interval, self.url = os.path.abspath(directory), interval, url
        self.path = os.path.join(self.directory, "recording.jsonl.gz")
        self.tests, self.current = [], {}
        self.recorder = self.scrapes = None

    def start(self, topo, regions):
        """Scrape every NVA of the lab regions (anycast_lab.regions.plan.regions())."""
        try:
            os.makedirs(self.directory, exist_ok=True)
            nvas = [(host, region.name) for region in regions for host, *_rest in region.nvas]
            self.recorder = Recorder(self.path, {"interval": self.interval, "started": time.time(), "nvas": [n for n, _r in nvas],
                                                 "source": f"the lab's {len(nvas)} NVAs during the e2e tests"})
            self.scrapes = LabScrapes(topo, nvas, self.interval, self.recorder, url=self.url, keep_up=True).start()
            log(f"e2e alerts: recording {len(nvas)} NVAs' checkers into {self.path}")
        except Exception as exc:  # pylint: disable=broad-except
            log(f"e2e alerts: could not start the recording: {exc!r}")

    def test_started(self, nodeid):
        self.current[nodeid] = {"nodeid": nodeid, "start": time.time(), "outcome": "passed"}

    def test_outcome(self, nodeid, outcome):
        test = self.current.get(nodeid)
        if test is not None and outcome != "passed":
            test["outcome"] = outcome if test["outcome"] == "passed" else test["outcome"]

    def test_finished(self, nodeid):
        test = self.current.pop(nodeid, None)
        if test is not None:
            test["end"] = time.time()
            self.tests.append(test)

    def finish(self):
        """Stop the scrapes, then write alerts.md (and the recording's tests); returns alerts.md's path or None."""
        if self.recorder is None:
            return None
        try:
            self.scrapes.stop()
            for nodeid in list(self.current):  # the last test: the session ends in its teardown, before it finishes
                self.test_finished(nodeid)
            for test in self.tests:
                self.recorder.write("test", **test)
            self.recorder.close()
            target = os.path.join(self.directory, "alerts.md")
            text = report(load_recording(self.path))
            with open(target, "w", encoding="utf-8") as handle:
                handle.write(text)
            log(f"e2e alerts: {target}")
            return target
        except Exception as exc:  # pylint: disable=broad-except
            log(f"e2e alerts: no report: {exc!r}")
            return None
