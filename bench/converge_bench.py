"""Converge speed (issue 17 item 3): site.yml for one lab region, first run and no-op rerun, this tree beside a baseline.

For each size (NVAs per region) and each tree, the lab comes up fresh at that size and site.yml runs twice for
westeurope: the first run (everything installed and configured), then the rerun (must change nothing). The baseline
is another revision (default ff916b7, before the speed work) checked out into a temporary git worktree and run
against the same lab the same way, in the same run of this script, so that the figures compare as ratios on a
shared, noisy machine. The trees alternate per size. A task-timing callback (lab/anycast_lab/callback_plugins/
task_timing.py) records every task; the breakdown per phase and role is printed and kept in the results.

Targets (the issue's figures, against today's 33 s rerun and 40-60 s first run): rerun at most 12/33 of the
baseline's, first run at most 25/50 of it, and a region of 8 NVAs at most 1.5x this tree's figures for 2.

    python bench/converge_bench.py [--sizes 2 8] [--baseline ff916b7] [--region westeurope]
"""
import argparse
import collections
import contextlib
import json
import os
import subprocess
import tempfile

import labbench
from anycast_lab.lab import Lab, inventory_path
from anycast_lab.paths import LAB_DIR

NAME = "converge_bench"
BASELINE = "ff916b7"
CALLBACKS = os.path.join(LAB_DIR, "anycast_lab", "callback_plugins")
# The targets as fractions of today's figures (rerun 12 s of 33 s, first run 25 s of 40-60 s) and the growth
# allowed from 2 to 8 NVAs.
RERUN_TARGET, FIRST_TARGET, GROWTH_TARGET = 12 / 33, 25 / 50, 1.5
PHASES = {"Azure": "azure", "Route Server facts": "azure", "NVA input consistency": "consistency",
          "Anycast NVAs | check": "plan", "Anycast NVAs | apply": "apply", "Anycast NVAs | roll": "roll"}


def log(message):
    print(f"[converge] {message}", flush=True)


@contextlib.contextmanager
def baseline_tree(revision):
    """A temporary worktree of `revision` and a collections dir where anycast.nva is that worktree."""
    with tempfile.TemporaryDirectory(prefix="converge-baseline-") as tmp:
        tree = os.path.join(tmp, "tree")
        subprocess.run(["git", "-C", labbench.ROOT, "worktree", "add", "--detach", tree, revision], check=True, capture_output=True)
        try:
            os.makedirs(os.path.join(tmp, "collections", "ansible_collections", "anycast"))
            os.symlink(tree, os.path.join(tmp, "collections", "ansible_collections", "anycast", "nva"))
            yield tree, os.path.join(tmp, "collections")
        finally:
            subprocess.run(["git", "-C", labbench.ROOT, "worktree", "remove", "--force", tree], check=False, capture_output=True)


def phase(play):
    return next((name for prefix, name in PHASES.items() if play.startswith(prefix)), "other")


def breakdown(timing):
    """Seconds and tasks per (phase, role) of one run, biggest first."""
    spent = collections.defaultdict(lambda: [0.0, 0])
    for task in timing["tasks"]:
        key = f"{phase(task['play'])}/{task['role'] or '-'}"
        spent[key][0] += task["seconds"] or 0.0
        spent[key][1] += 1
    return {key: {"s": round(seconds, 1), "tasks": count} for key, (seconds, count) in sorted(spent.items(), key=lambda kv: -kv[1][0])}


def converge(region, tree, collections_path, label):
    """site.yml once with the task-timing callback; {seconds, changed, breakdown}."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        env = {"ANSIBLE_COLLECTIONS_PATH": collections_path, "ANSIBLE_CALLBACK_PLUGINS": CALLBACKS,
               "ANSIBLE_CALLBACKS_ENABLED": "task_timing", "ANYCAST_TASK_TIMING": out.name}
        code, seconds, output = labbench.site(region, inventory=inventory_path(region.name), root=tree, env=env)
        if code:
            raise SystemExit(f"{label}: site.yml failed:\n{output[-3000:]}")
        timing = json.load(out)
    changed = sum(stats["changed"] for stats in timing["stats"].values())
    log(f"{label}: {seconds:.1f} s, changed={changed}, tasks={len(timing['tasks'])}")
    return {"s": round(seconds, 1), "changed": changed, "tasks": len(timing["tasks"]), "breakdown": breakdown(timing)}


def measure(size, region, trees):
    """For each tree: a fresh lab of `size` NVAs per region, then site.yml's first run and rerun."""
    figures = {}
    for name, (tree, collections_path) in trees:
        Lab().down()
        Lab(nvas=size).up()
        first = converge(region, tree, collections_path, f"{size} NVAs, {name}, first run")
        rerun = converge(region, tree, collections_path, f"{size} NVAs, {name}, rerun")
        if rerun["changed"]:
            raise SystemExit(f"{size} NVAs, {name}: the rerun changed {rerun['changed']} tasks")
        figures[name] = {"first": first, "rerun": rerun}
    return figures


def print_breakdown(size, figures):
    for run in ("first", "rerun"):
        keys = list(dict.fromkeys(key for tree in figures.values() for key in tree[run]["breakdown"]))
        log(f"{size} NVAs, {run}: seconds per phase/role (baseline -> ours)")
        for key in keys:
            base, ours = (figures[tree][run]["breakdown"].get(key, {"s": 0, "tasks": 0}) for tree in ("baseline", "ours"))
            log(f"  {key:28s} {base['s']:6.1f} s {base['tasks']:4d} tasks -> {ours['s']:6.1f} s {ours['tasks']:4d} tasks")


def rows(results):
    table = []
    two = results.get(2)
    for size, figures in results.items():
        for run, target, what in (("rerun", RERUN_TARGET, "no-op rerun"), ("first", FIRST_TARGET, "first run")):
            base, ours = figures["baseline"][run]["s"], figures["ours"][run]["s"]
            ratio = ours / base
            table.append(labbench.row(f"site.yml {what}, {size} NVAs (ratio to baseline {ratio:.2f}, target <= {target:.2f})",
                                      ours, target=f"<= {target * base:.0f} s", met=ratio <= target,
                                      anchor=base, anchor_name=f"baseline {BASELINE}", unit="s"))
            if two and size != 2:
                growth = ours / two["ours"][run]["s"]
                table.append(labbench.row(f"site.yml {what}, {size} NVAs / 2 NVAs (this tree)", round(growth, 2),
                                          target=f"<= {GROWTH_TARGET}", met=growth <= GROWTH_TARGET))
    return table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2, 8], help="NVAs per region (default: 2 8)")
    parser.add_argument("--baseline", default=BASELINE, help="the revision to compare with (default %(default)s)")
    parser.add_argument("--region", default="westeurope", help="the lab region to converge (default %(default)s)")
    args = parser.parse_args(argv)
    region = next(item for item in labbench.regions() if item.name == args.region)
    results = {}
    with labbench.exclusive_lab(), baseline_tree(args.baseline) as baseline:
        ours = (labbench.ROOT, os.path.join(labbench.ROOT, ".build"))
        try:
            for index, size in enumerate(args.sizes):
                trees = [("baseline", baseline), ("ours", ours)]
                results[size] = measure(size, region, trees if index % 2 == 0 else trees[::-1])
                print_breakdown(size, results[size])
        finally:
            Lab().down()
    table = rows(results)
    for item in table:
        log(f"{item['metric']}: {item['ours']} (baseline {item['anchor']}), target {item['target']}, met {item['met']}")
    labbench.save(NAME, table, baseline=args.baseline, region=args.region, sizes={str(size): figures for size, figures in results.items()})
    return 0 if all(item["met"] for item in table) else 1


if __name__ == "__main__":
    raise SystemExit(main())
