"""The README's picture of the Grafana dashboard (monitoring/grafana/anycast-nva-region.json), drawn from the lab's checkers.

record: scrapes every checker of one region of the RUNNING lab (curl of the checker's 127.0.0.1:9469 inside each NVA,
  one SSH stream per NVA, a scrape every --interval seconds) for --seconds, while it injects failures into that region
  (unless --no-inject): a drain of NVA 1 (withdrawn after 15 s) and its end, the region's application stopped and
  started again, and BGP session route_server_0 of NVA 2 disabled and enabled again in BIRD. Everything it injects is
  undone before it ends, also on an error or Ctrl-C, and the whole recording holds the lab lock (bench/labbench.py), so
  no benchmark or e2e test drives the lab meanwhile. It neither starts nor stops the lab. `--url NVA=URL` scrapes those
  URLs over HTTP instead (for example the healthcheck role's metrics forwarders), without injecting anything.
render: loads a recording into a short-lived Prometheus (promtool tsdb create-blocks-from openmetrics, then the
  prometheus server on 127.0.0.1 over those blocks), runs each query of the dashboard's panels over the recording's time
  range, and draws the panels where the dashboard places them, with the injected events marked, into a PNG.

    .venv/bin/python bench/dashboard_picture.py all [--region westeurope] [--seconds 165]
    .venv/bin/python bench/dashboard_picture.py render --recording FILE [--png FILE]

Needs the Debian package prometheus (promtool and prometheus; make deps) and matplotlib (bench/requirements-bench.txt).
The recording is gzip-compressed JSON lines (bench/results/dashboard_recording.jsonl.gz by default); the picture goes
to monitoring/grafana/anycast-nva-region.png by default, the file the README shows. Recording, scraping and the
short-lived Prometheus are anycast_lab.metrics_recorder's (the e2e tests' alert report uses them too).
"""
import argparse
import contextlib
import json
import os
import re
import tempfile
import threading
import time

from anycast_lab.metrics_recorder import METRICS_URL, Recorder, load_recording, log, poll_urls, prometheus_over, stream_lab_scrapes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DASHBOARD = os.path.join(ROOT, "monitoring", "grafana", "anycast-nva-region.json")
PICTURE = os.path.join(ROOT, "monitoring", "grafana", "anycast-nva-region.png")
RECORDING = os.path.join(ROOT, "bench", "results", "dashboard_recording.jsonl.gz")
# What is injected, seconds after the recording starts (`record` needs --seconds beyond the last one).
INJECTIONS = [(20, "drain"), (55, "undrain"), (75, "app-stop"), (95, "app-start"), (115, "session-down"), (140, "session-up")]
DRAIN_WITHDRAW_AFTER = 15
SESSION = "route_server_0"
# Grafana's colour names in the dashboard's value mappings.
COLOURS = {"red": "#e02f44", "green": "#56a64b", "orange": "#ff9830", "blue": "#3274d9", "text": "#8e8e8e"}
PALETTE = ["#7eb26d", "#eab839", "#6ed0e0", "#ef843c", "#e24d42", "#1f78c1", "#ba43a9", "#705da0", "#508642", "#cca300"]


class Injector:
    """Failures injected into one lab region, each undone by `restore` (which runs whatever happens)."""

    def __init__(self, topo, region, recorder):
        self.topo, self.region, self.recorder = topo, region, recorder
        self.nva1, self.nva2 = region.nvas[0][0], region.nvas[1][0]
        self.app = f"{region.short}-app"
        self.undo = {}

    def _nva(self, nva, argv):
        proc = self.topo.exec(nva, argv, timeout=30)
        if proc.returncode != 0:
            raise RuntimeError(f"{nva}: {' '.join(argv)} failed: {proc.stderr.strip()}")

    def run(self, action):
        text = {"drain": f"drain {self.nva1} (withdraw after {DRAIN_WITHDRAW_AFTER} s)", "undrain": f"undrain {self.nva1}",
                "app-stop": f"{self.app} stopped", "app-start": f"{self.app} started",
                "session-down": f"{self.nva2} {SESSION} disabled", "session-up": f"{self.nva2} {SESSION} enabled"}[action]
        log("inject: " + text)
        stamp = time.time()
        if action == "drain":
            self.undo["drain"] = True
            self._nva(self.nva1, ["anycast-healthcheck", "drain", "--withdraw-after", str(DRAIN_WITHDRAW_AFTER)])
        elif action == "undrain":
            self._nva(self.nva1, ["anycast-healthcheck", "undrain"])
            self.undo.pop("drain", None)
        elif action == "app-stop":
            self.undo["app"] = True
            self.topo.service_stop(self.app, "web")
        elif action == "app-start":
            self.topo.service_start(self.app, "web")
            self.undo.pop("app", None)
        elif action == "session-down":
            self.undo["session"] = True
            self._nva(self.nva2, ["birdc", "disable", SESSION])
        elif action == "session-up":
            self._nva(self.nva2, ["birdc", "enable", SESSION])
            self.undo.pop("session", None)
        self.recorder.write("event", t=stamp, text=text)

    def restore(self):
        for action in ("undrain", "app-start", "session-up"):
            key = {"undrain": "drain", "app-start": "app", "session-up": "session"}[action]
            if self.undo.get(key):
                try:
                    self.run(action)
                except Exception as exc:  # pylint: disable=broad-except
                    log(f"could not undo {key}: {exc}")


def record(args):
    """Record the checkers of one region (see the module's doc); returns the recording's path."""
    stop = threading.Event()
    meta = {"region": args.region, "interval": args.interval, "started": time.time()}
    if args.url:
        targets = dict(item.split("=", 1) for item in args.url)
        recorder = Recorder(args.recording, dict(meta, source="HTTP: " + ", ".join(sorted(targets)), nvas=sorted(targets)))
        threads = [threading.Thread(target=poll_urls, args=(name, url, args.region, args.interval, recorder, stop), daemon=True)
                   for name, url in targets.items()]
        hold, topo, region, labbench = contextlib.nullcontext(), None, None, None
    else:
        # pylint: disable=import-outside-toplevel
        import labbench  # beside this script (the script's directory is on sys.path; pytest.ini adds bench/ for the tests)
        from anycast_lab.lab import Lab
        region = next((item for item in labbench.plan.regions() if item.name == args.region), None)
        if region is None:
            raise SystemExit(f"no lab region {args.region}")
        topo = Lab().topology()
        nvas = [host for host, _ip, _sync, _mgmt in region.nvas]
        source = f"the lab's {args.region}, {len(nvas)} NVAs" + ("" if args.no_inject else ", failures injected")
        recorder = Recorder(args.recording, dict(meta, source=source, nvas=nvas))
        threads = [threading.Thread(target=stream_lab_scrapes, args=(topo, nva, args.region, args.interval, args.metrics_url, recorder, stop),
                                    daemon=True) for nva in nvas]
        hold = labbench.exclusive_lab()
    if not args.url:
        log(f"waiting for the lab lock {labbench.LOCK} (a benchmark or e2e run holds it while it drives the lab)")
    with hold:
        injector = None if args.url or args.no_inject else Injector(topo, region, recorder)
        started = time.time()
        for thread in threads:
            thread.start()
        log(f"recording {args.seconds:.0f} s of {meta['region']} into {args.recording}")
        try:
            pending = [] if injector is None else [item for item in INJECTIONS if item[0] < args.seconds]
            while time.time() - started < args.seconds:
                if pending and time.time() - started >= pending[0][0]:
                    injector.run(pending.pop(0)[1])
                time.sleep(0.1)
        finally:
            if injector:
                injector.restore()
            stop.set()
            for thread in threads:
                thread.join(timeout=10)
            recorder.close()
    log(f"recorded scrapes per NVA: {recorder.counts}")
    if not recorder.counts:
        raise SystemExit("no scrape recorded: is the lab up and deployed (the checkers on 127.0.0.1:9469)?")
    return args.recording


# -- drawing ----------------------------------------------------------------------------------------------------------------

def panel_queries(dashboard, region, rate_interval):
    """[(panel, [(expr, legendFormat)])] with the dashboard's variables filled in."""
    def fill(expr):
        return expr.replace("$__rate_interval", rate_interval).replace("$region", region)
    return [(panel, [(fill(t["expr"]), t.get("legendFormat", "")) for t in panel["targets"]])
            for panel in dashboard["panels"] if panel.get("type") != "row"]


def legend(fmt, labels):
    text = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt).strip()
    return text or ",".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "__name__")


def value_style(panel, value):
    """(text, colour) of a value through the panel's value mappings."""
    for mapping in panel["fieldConfig"]["defaults"].get("mappings", []):
        if mapping["type"] == "value" and str(int(value)) in mapping["options"] and float(value).is_integer():
            found = mapping["options"][str(int(value))]
            return found["text"], COLOURS.get(found.get("color"), found.get("color"))
        if mapping["type"] == "range" and mapping["options"]["from"] <= value <= mapping["options"]["to"]:
            found = mapping["options"]["result"]
            return found["text"], COLOURS.get(found.get("color"), found.get("color"))
    return f"{value:g}", COLOURS["text"]


def _draw_timeline(ax, panel, series, start, step):
    names = []
    for row, (name, points) in enumerate(series):
        names.append(name)
        segments = []
        for stamp, value in points:
            style = value_style(panel, value)
            if segments and segments[-1][2] == style and abs(segments[-1][1] - (stamp - start)) <= step * 1.5:
                segments[-1][1] = stamp - start + step
            else:
                segments.append([stamp - start, stamp - start + step, style])
        for left, right, (_text, colour) in segments:
            ax.broken_barh([(left, right - left)], (row - 0.4, 0.8), facecolors=colour)
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=7)
    ax.set_ylim(-0.6, len(names) - 0.4)
    ax.invert_yaxis()
    shown = {}
    for _name, points in series:
        for _stamp, value in points:
            text, colour = value_style(panel, value)
            shown.setdefault(text, colour)
    if shown:
        import matplotlib.patches as mpatches  # pylint: disable=import-outside-toplevel
        ax.legend(handles=[mpatches.Patch(color=c, label=t) for t, c in shown.items()], fontsize=7, loc="upper right",
                  ncol=len(shown), framealpha=0.8)


def _draw_series(ax, panel, series, start, step):
    defaults = panel["fieldConfig"]["defaults"]
    unit, bars = defaults.get("unit", "none"), defaults.get("custom", {}).get("drawStyle") == "bars"
    scale, label = {"s": (1000.0, "ms"), "percentunit": (100.0, "%"), "reqps": (1.0, "per second")}.get(unit, (1.0, ""))
    for index, (name, points) in enumerate(series):
        xs = [stamp - start for stamp, _value in points]
        ys = [value * scale for _stamp, value in points]
        colour = PALETTE[index % len(PALETTE)]
        if bars:
            ax.bar(xs, ys, width=step, color=colour, alpha=0.8, label=name)
        else:
            ax.step(xs, ys, where="post", color=colour, linewidth=1.2, label=name)
    if label:
        ax.set_ylabel(label, fontsize=7)
    if "min" in defaults:
        ax.set_ylim(bottom=defaults["min"] * scale)
    if series:
        ax.legend(fontsize=7, loc="upper left", ncol=2, framealpha=0.8)


def render(recording, png, dashboard_path=DASHBOARD):
    """Draw every panel of the dashboard over the recording into `png`; returns {panel title: number of series drawn}."""
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
    with open(dashboard_path, encoding="utf-8") as handle:
        dashboard = json.load(handle)
    meta = recording["meta"]
    stamps = [scrape["t"] for scrape in recording["scrapes"]]
    start, end = min(stamps), max(stamps)
    step = float(meta.get("interval", 1.0))
    rate_interval = f"{max(4.0, 4 * step):.0f}s"
    region = meta.get("region") or recording["scrapes"][0]["region"]
    panels = panel_queries(dashboard, region, rate_interval)
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p, _q in panels)
    events = sorted(recording["events"], key=lambda event: event["t"])
    inches = rows * 0.33 + 1.4
    fig = plt.figure(figsize=(16, inches), dpi=90)
    fig.suptitle(f"{dashboard['title']}: {region} ({meta.get('source', 'recording')}), {end - start:.0f} s "
                 f"from {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(start))}", fontsize=11, y=1 - 0.25 / inches)
    if events:
        fig.text(0.5, 1 - 0.6 / inches, "   ".join(f"[{n}] {e['text']} at {e['t'] - start:.0f} s" for n, e in enumerate(events, 1)),
                 ha="center", fontsize=8, color="#333333")
    top, height = 1.0 - 0.95 / inches, 1.0 - 1.4 / inches
    drawn = {}
    with tempfile.TemporaryDirectory(prefix="anycast-dashboard-") as workdir, prometheus_over(recording, workdir) as query_range:
        for panel, queries in panels:
            grid = panel["gridPos"]
            margin = 0.1 if panel["type"] == "state-timeline" else 0.035  # room for the row names on the left
            ax = fig.add_axes([0.01 + 0.98 * grid["x"] / 24 + margin, top - height * (grid["y"] + grid["h"]) / rows + 0.35 / inches,
                               0.98 * grid["w"] / 24 - margin - 0.012, height * grid["h"] / rows - 0.75 / inches])
            series = []
            for expr, fmt in queries:
                for result in query_range(expr, start, end, step):
                    series.append((legend(fmt, result["metric"]), [(float(t), float(v)) for t, v in result["values"]]))
            series.sort(key=lambda item: item[0])
            drawn[panel["title"]] = len(series)
            if panel["type"] == "state-timeline":
                _draw_timeline(ax, panel, series, start, step)
            else:
                _draw_series(ax, panel, series, start, step)
            if not series:
                ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="#999999")
            for number, event in enumerate(events, 1):
                ax.axvline(event["t"] - start, color="#555555", linestyle=":", linewidth=0.9)
                ax.text(event["t"] - start, 1.005, str(number), transform=ax.get_xaxis_transform(), fontsize=7, ha="center", va="bottom")
            ax.set_xlim(0, end - start)
            ax.set_title(panel["title"], fontsize=9, loc="left", pad=10)
            ax.tick_params(labelsize=7)
            ax.set_xlabel("seconds", fontsize=7, labelpad=1)
            ax.grid(alpha=0.3)
    os.makedirs(os.path.dirname(os.path.abspath(png)), exist_ok=True)
    fig.savefig(png)
    plt.close(fig)
    return drawn


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("command", nargs="?", choices=["all", "record", "render"], default="all")
    parser.add_argument("--region", default="westeurope", help="the lab region to record (default westeurope)")
    parser.add_argument("--seconds", type=float, default=165.0, help="how long to record (default 165; the injections end at 140)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between two scrapes of a checker (default 1)")
    parser.add_argument("--no-inject", action="store_true", help="record without injecting failures")
    parser.add_argument("--metrics-url", default=METRICS_URL, help=f"the checker's metrics, as seen inside an NVA (default {METRICS_URL})")
    parser.add_argument("--url", action="append", metavar="NVA=URL", help="scrape this URL over HTTP as NVA (repeatable; no lab, no injection)")
    parser.add_argument("--recording", default=RECORDING, help=f"recording file (default {os.path.relpath(RECORDING, ROOT)})")
    parser.add_argument("--png", default=PICTURE, help=f"picture to write (default {os.path.relpath(PICTURE, ROOT)})")
    args = parser.parse_args(argv)
    if args.command in ("all", "record"):
        record(args)
    if args.command in ("all", "render"):
        drawn = render(load_recording(args.recording), args.png)
        log(f"picture written to {args.png}: " + ", ".join(f"{title}: {count}" for title, count in drawn.items()))


if __name__ == "__main__":
    main()
