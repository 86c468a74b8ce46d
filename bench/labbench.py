"""What every lab benchmark shares: exclusive use of the lab, a deployed lab, and one results file per benchmark.

A benchmark module runs as `python bench/<name>.py` (the venv's Python, which has the lab package, and the venv on PATH: `make bench`)
and calls `save(name, figures)`; bench/report.py turns every results file into the table and the plot.
"""
import contextlib
import fcntl
import json
import os
import statistics
import subprocess
import sys
import time

from anycast_lab.lab import Lab
from anycast_lab.paths import LAB_LOCK as LOCK, REPO as ROOT
from anycast_lab.regions import plan

RESULTS = os.environ.get("ANYCAST_BENCH_RESULTS", os.path.join(ROOT, "bench", "results"))


@contextlib.contextmanager
def exclusive_lab():
    """Hold the lab lock: two benchmarks (or a benchmark and the e2e tests) never drive the lab at once."""
    with open(LOCK, "w", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def row(metric, ours, target=None, met=None, anchor=None, anchor_name=None, unit=""):  # pylint: disable=too-many-arguments
    """One line of the summary table: our figure, the anchor's figure beside it (if any), the target and whether it is met."""
    return {"metric": metric, "ours": ours, "anchor": anchor, "anchor_name": anchor_name, "target": target, "met": met, "unit": unit}


def save(name, rows, **figures):
    """Write one benchmark's table rows and raw figures to bench/results/<name>.json (with when and where it ran)."""
    os.makedirs(RESULTS, exist_ok=True)
    figures = dict(figures, rows=rows, benchmark=name, finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                   load_average=os.getloadavg()[0], cpus=os.cpu_count())
    path = os.path.join(RESULTS, f"{name}.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(figures, handle, indent=2, sort_keys=True)
    print(f"figures written to {os.path.relpath(path, ROOT)}", flush=True)
    return path


def median_worst(values):
    """(median, worst) of a list of numbers; (None, None) when empty."""
    return (statistics.median(values), max(values)) if values else (None, None)


def regions():
    return plan.REGIONS


def lab():
    return Lab()


def site(region, extra_vars=None, playbook="site.yml", inventory=None, root=ROOT, env=None):
    """Run one of the collection's playbooks for one lab region; (return code, seconds, output).

    `inventory`: default the checked-in inventories/lab/<region>; `root`: the checkout whose playbook and ansible.cfg run
    (another revision's worktree: set ANSIBLE_COLLECTIONS_PATH in `env` to a tree where anycast.nva is that worktree).
    """
    argv = ["ansible-playbook", "-i", inventory or os.path.join(ROOT, "inventories", "lab", region.name), os.path.join(root, "playbooks", playbook)]
    if extra_vars:
        argv += ["-e", json.dumps(extra_vars)]
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(root, "ansible.cfg"), ANSIBLE_NOCOLOR="1", **(env or {}))
    started = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=root, env=env)
    return proc.returncode, time.monotonic() - started, proc.stdout + proc.stderr


def anycast_learned_from_both_regions():
    out = subprocess.run(["ip", "-n", plan.ONPREM_NS, "route", "show", f"{plan.ANYCAST_IP}/32"], capture_output=True, text=True, check=False).stdout
    return out.count("nexthop via") == 2


def ensure_deployed(handle=None):
    """Bring the lab up and run site.yml for both regions unless both already announce the anycast IP on-premises."""
    handle = handle or lab()
    handle.up()
    if anycast_learned_from_both_regions():
        return handle
    for region in plan.REGIONS:
        code, seconds, output = site(region)
        if code:
            sys.exit(f"site.yml failed for {region.name} after {seconds:.0f} s:\n{output[-3000:]}")
        print(f"site.yml {region.name}: deployed in {seconds:.0f} s", flush=True)
    deadline = time.monotonic() + 60
    while not anycast_learned_from_both_regions():
        if time.monotonic() > deadline:
            sys.exit("on-premises did not learn the anycast IP from both regions within 60 s")
        time.sleep(0.5)
    return handle
