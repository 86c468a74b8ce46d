"""Benchmark: converge a route table of 50 routes associated with 3 subnets through the real module.

Starts its own ARM emulator, runs anycast.nva.route_table with ansible-playbook twice and prints
the ARM writes and the wall time of each run. Targets: first run <= 4 writes (one PUT of the
table with every route embedded, one PUT per subnet), rerun 0 writes.

    make collection-link && .venv/bin/python bench/route_table_bench.py

bench/control_plane_bench.py --part routes runs the same job (table_args) beside azure.azcollection and saves the figures.
"""
import os
import sys
import tempfile
import time

from anycast_lab.arm.client import EmulatorProcess
from anycast_lab.paths import REPO as ROOT
from anycast_lab.playbook_runner import RG, SPOKE_SUBNETS, SPOKE_VNET, Runner, extra_topology

ROUTES = 50
TARGETS = {"first run": 4, "rerun": 0}


def table_args():
    routes = [{"name": "r%02d" % i, "address_prefix": "172.16.%d.0/24" % i, "next_hop_type": "VirtualAppliance",
               "next_hop_ip_address": "10.10.2.%d" % (4 + i % 2)} for i in range(ROUTES)]
    subnets = [{"virtual_network": SPOKE_VNET, "name": name} for name in SPOKE_SUBNETS]
    return dict(name="rt-bench", resource_group=RG, location="westeurope", routes=routes, subnets=subnets)


def main():
    if not os.path.isdir(os.path.join(ROOT, ".build", "ansible_collections", "anycast", "nva")):
        sys.exit("run `make collection-link` first")
    failed = False
    with tempfile.TemporaryDirectory(prefix="route-table-bench-") as workdir:
        emulator = EmulatorProcess(os.path.join(workdir, "arm")).start()
        try:
            emulator.reset()
            emulator.seed(extra_topology(emulator))
            runner = Runner(emulator, workdir)
            print("route_table: %d routes, %d subnets, real module via ansible-playbook, ARM emulator at %s" % (ROUTES, len(SPOKE_SUBNETS), emulator.endpoint))
            for label, target in TARGETS.items():
                started = time.monotonic()
                result = runner("route_table", table_args(), diff=False)
                wall = time.monotonic() - started
                ok = not result["failed"] and result["writes"] <= target
                failed = failed or not ok
                print("%-9s  writes=%d (target <= %d)  changed=%s  wall=%.2f s  %s"
                      % (label, result["writes"], target, result["changed"], wall, "OK" if ok else "MISSED: %s" % result.get("msg", "")))
            table = emulator.network_client().route_tables.get(RG, "rt-bench")
            print("in Azure: %d routes, %d subnets associated" % (len(table.routes), len(table.subnets or [])))
        finally:
            emulator.stop()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
