"""Safe day-2 changes (issue 11): a rolling health-checker upgrade of a region at 50 requests/s, 2 and 4 NVAs per region.

For each size the lab comes up with that many NVAs per region and both regions are deployed with site.yml. Then
the checker code installed on every westeurope NVA is made to differ from the collection's (what a new release
looks like to the role) and site.yml rolls it out: one NVA at a time, each drained before its checker restarts.
Meanwhile the on-premises client sends 50 requests/s and a watcher reads westeurope's VNet route to the anycast
IP every 20 ms. Figures: failed requests (target 0), seconds the region had fewer NVAs announcing than it has,
wall time of the run. The lab is left down (the next benchmark brings it up at its default size).

    python bench/rolling_bench.py [--sizes 2 4] [--rate 50] [--repeat 1]
"""
import argparse
import json
import os
import re
import subprocess
import threading
import time

import labbench
from anycast_lab.lab import Lab, inventory_path
from anycast_lab.regions import fabric, plan
from anycast_lab.regions.traffic import Traffic

NAME = "rolling_bench"
PACKAGE_INIT = "/usr/local/lib/anycast-healthcheck/anycast_healthcheck/__init__.py"


def log(message):
    print(f"[rolling] {message}", flush=True)


def site(region, extra_vars=None):
    """site.yml for a region of the running lab (its size's inventory); (return code, seconds, output).

    Every PLAY and TASK line of the output carries the seconds since the run started, so a failed request
    can be placed in the rollout.
    """
    argv = ["ansible-playbook", "-i", inventory_path(region.name), os.path.join(labbench.ROOT, "playbooks", "site.yml")]
    if extra_vars:
        argv += ["-e", json.dumps(extra_vars)]
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(labbench.ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    started = time.monotonic()
    lines = []
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=labbench.ROOT, env=env) as proc:
        for line in proc.stdout:
            lines.append(f"[{time.monotonic() - started:7.2f}] {line}" if line.startswith(("PLAY", "TASK")) else line)
    return proc.returncode, time.monotonic() - started, "".join(lines)


def announcing(region):
    """How many NVAs the region's VNet routes the anycast IP to (what Route Server learned and programmed)."""
    return len(fabric.next_hops(region))


class Shortfall:
    """Polls a region's NVA count every 20 ms; adds up the time it was below `wanted`."""

    def __init__(self, region, wanted, poll=0.02):
        self.region, self.wanted, self.poll = region, wanted, poll
        self.seconds, self.fewest = 0.0, wanted
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self):
        last = time.monotonic()
        while not self._stop.is_set():
            count = announcing(self.region)
            now = time.monotonic()
            if count < self.wanted:
                self.seconds += now - last
                self.fewest = min(self.fewest, count)
            last = now
            time.sleep(self.poll)

    def stop(self):
        self._stop.set()
        self._thread.join(5)
        return round(self.seconds, 2), self.fewest


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"after {timeout} s: {what}")
        time.sleep(0.5)


def deploy(nvas):
    """The lab at `nvas` NVAs per region, both regions deployed and announcing; the lab handle."""
    Lab().down()
    handle = Lab(nvas=nvas)
    handle.up()
    for region in plan.REGIONS:
        code, seconds, output = site(region)
        if code:
            raise SystemExit(f"site.yml failed for {region.name} ({nvas} NVAs):\n{output[-3000:]}")
        log(f"{nvas} NVAs: {region.name} deployed in {seconds:.0f} s")
    return handle


def rollout(handle, nvas, rate, attempt):
    """One rolling checker upgrade of westeurope under traffic; the run's figures."""
    west = plan.REGIONS[0]
    wait_for(lambda: announcing(west) == nvas, 120, f"westeurope's {nvas} NVAs did not all announce")
    wait_for(labbench.anycast_learned_from_both_regions, 60, "on-premises did not learn the anycast IP from both regions")
    topo = handle.topology()
    for host, *_rest in west.nvas:
        topo.host(host).ssh(["sh", "-c", f"echo '# an older release' >> {PACKAGE_INIT}"])
    flow = Traffic(rate=rate, timeout=1.0)
    watch = Shortfall(west, nvas)
    try:
        time.sleep(2)
        started = time.time()
        code, wall, output = site(west)
        time.sleep(2)
    finally:
        short_s, fewest = watch.stop()
        records = flow.stop()
    if code:
        raise SystemExit(f"the rolling upgrade failed ({nvas} NVAs):\n{output[-3000:]}")
    drained = len(re.findall(r"Rolling \| De-prefer this NVA's prefixes[^\n]*\n+changed: \[", output))
    failures = [dict(record, after_start_s=round(record["t"] - started, 2)) for record in records if not record["ok"]]
    failed = len(failures)
    # What the run changed (a checker upgrade should change the checker alone, plus the drains around it).
    changed_tasks = sorted(set(re.findall(r"TASK \[([^\]]+)\][^\n]*\n+changed: ", output)))
    log(f"{nvas} NVAs, run {attempt}: rolling upgrade in {wall:.0f} s, {drained} NVAs drained one at a time, {failed} failed of "
        f"{len(records)} requests, {short_s} s with fewer than {nvas} NVAs announcing (fewest {fewest})")
    log(f"  tasks that changed something: {changed_tasks}")
    for failure in failures:
        log(f"  failed request {failure['after_start_s']} s into the run: {failure['body']}")
    os.makedirs(labbench.RESULTS, exist_ok=True)
    with open(os.path.join(labbench.RESULTS, f"{NAME}_{nvas}nvas_run{attempt}.log"), "w", encoding="utf-8") as out:
        out.write(output)
    return {"nvas": nvas, "run": attempt, "wall_s": round(wall, 1), "requests": len(records), "failed": failed,
            "drained": drained, "short_s": short_s, "fewest_announcing": fewest, "changed_tasks": changed_tasks, "failures": failures}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2, 4], help="NVAs per region (default: 2 4)")
    parser.add_argument("--rate", type=float, default=50.0, help="requests per second (default %(default)s)")
    parser.add_argument("--repeat", type=int, default=1, help="rolling upgrades per size, one after the other (default %(default)s)")
    args = parser.parse_args(argv)
    runs = []
    with labbench.exclusive_lab():
        try:
            for nvas in args.sizes:
                handle = deploy(nvas)
                for attempt in range(1, args.repeat + 1):
                    runs.append(rollout(handle, nvas, args.rate, attempt))
        finally:
            Lab().down()
    rows = []
    for run in runs:
        name = f"rolling checker upgrade, {run['nvas']} NVAs" + (f" (run {run['run']})" if args.repeat > 1 else "")
        rows.append(labbench.row(f"{name}, {args.rate:.0f} req/s: failed requests", run["failed"], target="0", met=run["failed"] == 0))
        rows.append(labbench.row(f"{name}: seconds with fewer NVAs announcing", run["short_s"], unit="s"))
        rows.append(labbench.row(f"{name}: wall time of site.yml", round(run["wall_s"]), unit="s"))
    labbench.save(NAME, rows, runs=runs, rate=args.rate)
    return 0 if all(run["failed"] == 0 for run in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
