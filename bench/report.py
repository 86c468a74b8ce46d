"""The benchmark summary: every bench/results/<name>.json as one table, ours beside the anchors.

    python bench/report.py            # prints the table, writes bench/results/summary.md

Exit status 1 when a figure misses its target (a benchmark that did not run is listed, not failed).
"""
import glob
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.environ.get("ANYCAST_BENCH_RESULTS", os.path.join(ROOT, "bench", "results"))
# Printed in this order; anything else found in the results dir follows.
ORDER = ["failover", "dataplane_drain", "dataplane_conntrack", "dataplane_iperf", "control_plane", "scale"]


def cell(value, unit=""):
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        value = f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return f"{value} {unit}".strip()


def load():
    found = {os.path.splitext(os.path.basename(path))[0]: path for path in glob.glob(os.path.join(RESULTS, "*.json"))}
    names = [name for name in ORDER if name in found] + sorted(set(found) - set(ORDER))
    results = []
    for name in names:
        with open(found[name], encoding="utf-8") as handle:
            results.append(json.load(handle))
    return results


def table(results):
    """Markdown lines: one section per benchmark, one row per figure."""
    lines = []
    for result in results:
        where = f"{result.get('finished', '?')}, load {result.get('load_average', 0):.1f} on {result.get('cpus', '?')} CPUs"
        lines += ["", f"### {result['benchmark']} ({where})", "",
                  "| figure | ours | anchor | target | met |", "|---|---|---|---|---|"]
        for item in result.get("rows", []):
            anchor = cell(item.get("anchor"), item.get("unit", ""))
            if item.get("anchor_name") and item.get("anchor") is not None:
                anchor += f" ({item['anchor_name']})"
            lines.append(f"| {item['metric']} | {cell(item['ours'], item.get('unit', ''))} | {anchor} | {cell(item.get('target'))} | {cell(item.get('met'))} |")
    return lines


def main():
    results = load()
    if not results:
        sys.exit(f"no results in {RESULTS}: run `make bench` first")
    lines = ["# anycast.nva benchmark summary"] + table(results)
    missing = [name for name in ORDER if name not in {result["benchmark"] for result in results}]
    if missing:
        lines += ["", "Not run: " + ", ".join(missing)]
    text = "\n".join(lines) + "\n"
    print(text)
    with open(os.path.join(RESULTS, "summary.md"), "w", encoding="utf-8") as handle:
        handle.write(text)
    missed = [item["metric"] for result in results for item in result.get("rows", []) if item.get("met") is False]
    if missed:
        print("missed targets: " + "; ".join(missed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
