"""Benchmark 5 (control plane): what the collection costs in ARM calls and time.

Part `cp`: playbooks/site.yml per lab region from a fresh lab (`python -m anycast_lab down` + `up`), then the
rerun: ARM writes, ARM requests, changed tasks and wall time of each run. Target for the rerun: 0 writes, changed=0.
Holds the lab lock all along and leaves the lab deployed.

Part `routes`: one route table of 50 routes associated with 3 subnets, converged against a private ARM emulator
(no lab, no lock) twice, first by anycast.nva.route_table, then from the same start by azure.azcollection's
azure_rm_routetable + azure_rm_route (one task item per route) + azure_rm_subnet (one per subnet), the way that
collection is written to be used. azure.azcollection runs unmodified from its own venv (.build/bench-azcollection,
installed here on first use: it pins azure SDK versions that conflict with ours) and reaches the emulator through
`anycast_lab.arm.proxy` (an HTTPS CONNECT proxy that sends management.azure.com and login.microsoftonline.com to
the emulator, whose certificate carries those names). Why not `cloud_environment: <metadata URL>`: the script
probes it and records the failure (azcollection calls azure.cli.core.cloud.get_cloud_from_metadata_endpoint,
which its pinned azure-cli-core no longer has).

    make collection-link
    PATH=$PWD/.venv/bin:$PATH python bench/control_plane_bench.py [--part cp|routes|all]

Writes bench/results/control_plane.json (labbench.save); a part not run keeps the figures of its last run.
"""
import argparse
import fcntl
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import labbench
from anycast_lab.arm.client import EmulatorProcess
from anycast_lab.arm.proxy import DEFAULT_HOSTS, ConnectProxy
from anycast_lab.paths import REPO as ROOT
from anycast_lab.playbook_runner import RG, SPOKE_SUBNETS, SPOKE_VNET, Runner, extra_topology
from route_table_bench import ROUTES, table_args

NAME = "control_plane"
AZ_DIR = os.path.join(ROOT, ".build", "bench-azcollection")
AZ_VENV = os.path.join(AZ_DIR, "venv")
AZ_REQUIREMENTS = os.path.join(ROOT, "bench", "requirements-azcollection.txt")
SPOKE_PREFIXES = {name: "10.11.%d.0/24" % index for index, name in enumerate(SPOKE_SUBNETS, start=1)}
LOGS = os.path.join(ROOT, ".build", "bench-control-plane")  # ansible-playbook output of each site.yml run
RECAP_RE = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def log(message):
    print(message, flush=True)


# ------------------------------------------------------------------ azure.azcollection in its own venv
def _az_python():
    return os.path.join(AZ_VENV, "bin", "python")


def _az_run(code):
    """stdout of `code` run by the venv's Python (without our PYTHONPATH)."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return subprocess.run([_az_python(), "-c", code], capture_output=True, text=True, check=True, env=env).stdout.strip()


def _site_packages():
    return _az_run("import sysconfig; print(sysconfig.get_paths()['purelib'])")


def _collection_dir():
    return os.path.join(_site_packages(), "ansible_collections", "azure", "azcollection")


def _pip(*args):
    started = time.monotonic()
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    proc = subprocess.run([_az_python(), "-m", "pip", "install", "--quiet", *args], capture_output=True, text=True, check=False, env=env)
    if proc.returncode:
        sys.exit("installing azure.azcollection's venv failed (pip install %s):\n%s" % (" ".join(args), (proc.stdout + proc.stderr)[-3000:]))
    log("  pip install %s: %.0f s" % (" ".join(args), time.monotonic() - started))


def ensure_azcollection():
    """Install (once; cached by a marker that names what was installed) the community `ansible` package, which carries
    azure.azcollection, and the collection's own requirements.txt into .build/bench-azcollection/venv. Returns versions."""
    os.makedirs(AZ_DIR, exist_ok=True)
    with open(os.path.join(AZ_DIR, "install.lock"), "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two benchmark runs never pip into the same venv at once
        marker = os.path.join(AZ_DIR, "installed.json")
        with open(AZ_REQUIREMENTS, "rb") as handle:
            wanted = hashlib.sha256(handle.read() + sys.version.encode()).hexdigest()
        try:
            with open(marker, encoding="utf-8") as handle:
                done = json.load(handle)
        except (OSError, ValueError):
            done = {}
        if done.get("requirements") == wanted and os.path.exists(_az_python()):
            return done["versions"]
        log("installing azure.azcollection into %s (first use; several minutes) ..." % os.path.relpath(AZ_VENV, ROOT))
        if not os.path.exists(_az_python()):
            subprocess.run([sys.executable, "-m", "venv", AZ_VENV], check=True)
        _pip("-r", AZ_REQUIREMENTS)
        _pip("-r", os.path.join(_collection_dir(), "requirements.txt"))
        versions = _az_versions()
        with open(marker + ".tmp", "w", encoding="utf-8") as handle:
            json.dump({"requirements": wanted, "versions": versions}, handle, indent=2)
        os.replace(marker + ".tmp", marker)
        return versions


def _az_versions():
    code = ("import json, importlib.metadata as m\n"
            "names = ['ansible', 'ansible-core', 'azure-mgmt-network', 'azure-identity', 'azure-core', 'azure-cli-core', 'msal']\n"
            "print(json.dumps({n: m.version(n) for n in names}))")
    versions = json.loads(_az_run(code))
    with open(os.path.join(_collection_dir(), "MANIFEST.json"), encoding="utf-8") as handle:
        versions["azure.azcollection"] = json.load(handle)["collection_info"]["version"]
    return versions


class AzCollection:
    """Runs azure.azcollection plays with the venv's own ansible-playbook, against `emulator` through `proxy`."""

    def __init__(self, emulator, proxy, workdir):
        self.emulator, self.proxy, self.workdir = emulator, proxy, os.path.join(workdir, "azcollection")
        os.makedirs(self.workdir, exist_ok=True)
        site_packages = _site_packages()
        with open(os.path.join(self.workdir, "ansible.cfg"), "w", encoding="utf-8") as handle:
            # Only the venv's collections (not ~/.ansible nor our .build): the azcollection version we record is the one that runs.
            handle.write("[defaults]\ncollections_path = %s\ncollections_scan_sys_path = False\n" % site_packages)
        self.count = 0

    def auth(self):
        emu = self.emulator
        return dict(subscription_id=emu.subscription_id, client_id=emu.client_id, secret=emu.client_secret, tenant=emu.tenant_id)

    def env(self, proxy=True):
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("AZURE_", "ANSIBLE_")) and key.lower() not in ("pythonpath", "no_proxy", "https_proxy", "http_proxy")}
        env.update(ANSIBLE_CONFIG=os.path.join(self.workdir, "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_DEPRECATION_WARNINGS="0",
                   REQUESTS_CA_BUNDLE=self.emulator.ca_bundle, SSL_CERT_FILE=self.emulator.ca_bundle,
                   AZURE_CONFIG_DIR=os.path.join(self.workdir, "azure-config"))  # azure-cli-core keeps its files here, not in ~/.azure
        if proxy:
            env.update(HTTPS_PROXY=self.proxy.url, https_proxy=self.proxy.url)
        return env

    def play(self, tasks, proxy=True):
        """Run one play of `tasks` on localhost; (return code, seconds, output)."""
        self.count += 1
        playbook = os.path.join(self.workdir, "play-%d.yml" % self.count)
        play = {"hosts": "localhost", "gather_facts": False, "module_defaults": {"group/azure.azcollection.all": self.auth()}, "tasks": tasks}
        with open(playbook, "w", encoding="utf-8") as handle:
            json.dump([play], handle)  # JSON is YAML
        argv = [os.path.join(AZ_VENV, "bin", "ansible-playbook"), "-i", "localhost,", "-c", "local",
                "-e", "ansible_python_interpreter=" + _az_python(), playbook]
        started = time.monotonic()
        proc = subprocess.run(argv, cwd=self.workdir, env=self.env(proxy), capture_output=True, text=True, timeout=1800, check=False)
        return proc.returncode, time.monotonic() - started, proc.stdout + proc.stderr

    def probe_metadata_url(self):
        """Does `cloud_environment: <the emulator's /metadata/endpoints URL>` work (no proxy)? (works, message)."""
        url = self.emulator.endpoint + "/metadata/endpoints?api-version=2022-09-01"
        code, _seconds, output = self.play([{"name": "probe", "azure.azcollection.azure_rm_resourcegroup_info": {
            "name": RG, "cloud_environment": url, "disable_instance_discovery": True}}], proxy=False)
        message = re.search(r'"msg": "([^"]*)"', output)
        message = message.group(1) if message else output[-400:]
        # The module hides the cause behind a second error (it reads `.message` of the exception): name the first one.
        if _az_run("import azure.cli.core.cloud as c; print(hasattr(c, 'get_cloud_from_metadata_endpoint'))") != "True":
            message += (" (cause: azure_rm_common resolves a URL with azure.cli.core.cloud.get_cloud_from_metadata_endpoint, "
                        "which azure-cli-core %s does not have)" % _az_run("import importlib.metadata as m; print(m.version('azure-cli-core'))"))
        return code == 0, message

    @staticmethod
    def tasks():
        """The same job as route_table_bench.table_args(), in azure.azcollection's modules."""
        args = table_args()
        routes = [{"name": r["name"], "address_prefix": r["address_prefix"], "next_hop_ip_address": r["next_hop_ip_address"]} for r in args["routes"]]
        return [
            {"name": "route table", "azure.azcollection.azure_rm_routetable": {"resource_group": RG, "name": args["name"], "location": args["location"]}},
            {"name": "routes", "loop": routes, "azure.azcollection.azure_rm_route": {
                "resource_group": RG, "route_table_name": args["name"], "name": "{{ item.name }}", "address_prefix": "{{ item.address_prefix }}",
                "next_hop_type": "virtual_appliance", "next_hop_ip_address": "{{ item.next_hop_ip_address }}"}},
            {"name": "subnets", "loop": [{"name": name, "prefix": SPOKE_PREFIXES[name]} for name in SPOKE_SUBNETS],
             "azure.azcollection.azure_rm_subnet": {"resource_group": RG, "virtual_network_name": SPOKE_VNET, "name": "{{ item.name }}",
                                                    "address_prefix_cidr": "{{ item.prefix }}", "route_table": args["name"]}},
        ]


def changed_results(output):
    """Module runs (loop items count one each) the default callback reported as changed."""
    return len(re.findall(r"^changed: \[", output, re.M))


# ------------------------------------------------------------------ part routes
def measure(emulator, run):
    """Clear the request log, call run() -> (ok, changed, detail), count what reached the emulator."""
    emulator.clear_requests()
    started = time.monotonic()
    ok, changed, detail = run()
    wall = time.monotonic() - started
    log_entries = emulator.requests()
    arm = [entry for entry in log_entries if entry["kind"] == "arm"]
    return {"ok": ok, "changed": changed, "wall_s": round(wall, 2), "writes": sum(1 for entry in arm if entry["category"] == "write"),
            "arm_requests": len(arm), "other_requests": len(log_entries) - len(arm), "detail": detail}


def in_azure(emulator):
    table = emulator.network_client().route_tables.get(RG, "rt-bench")
    return {"routes": len(table.routes), "subnets": len(table.subnets or [])}


def run_routes(workdir):
    versions = ensure_azcollection()
    anchor = "azure.azcollection %s" % versions["azure.azcollection"]
    log("azure.azcollection %s (ansible %s, azure-mgmt-network %s)" % (versions["azure.azcollection"], versions["ansible"], versions["azure-mgmt-network"]))
    emulator = EmulatorProcess(os.path.join(workdir, "arm"), extra_args=[arg for host in DEFAULT_HOSTS for arg in ("--server-name", host)]).start()
    proxy = ConnectProxy(emulator.endpoint).start()
    figures = {"routes": ROUTES, "subnets": len(SPOKE_SUBNETS), "emulator_op_seconds": emulator.defaults["op_seconds"], "versions": versions}
    try:
        def fresh():
            emulator.reset()
            emulator.seed(extra_topology(emulator))

        fresh()
        runner = Runner(emulator, workdir)

        def ours():
            result = runner("route_table", table_args(), diff=False)
            return not result["failed"], int(bool(result["changed"])), result.get("msg", "")

        for label in ("first", "rerun"):
            figures[f"ours_{label}"] = dict(measure(emulator, ours), in_azure=in_azure(emulator))
            log("anycast.nva.route_table   %-5s %s" % (label, _fmt(figures[f"ours_{label}"])))

        fresh()
        az = AzCollection(emulator, proxy, workdir)

        def theirs():
            code, _seconds, output = az.play(az.tasks())
            return code == 0, changed_results(output), "" if code == 0 else output[-3000:]

        for label in ("first", "rerun"):
            figures[f"az_{label}"] = dict(measure(emulator, theirs), in_azure=in_azure(emulator))
            log("%-25s %-5s %s" % (anchor, label, _fmt(figures[f"az_{label}"])))
            if not figures[f"az_{label}"]["ok"]:
                log(figures[f"az_{label}"]["detail"])
        works, message = az.probe_metadata_url()
        figures["azcollection_cloud_environment_metadata_url"] = {"works": works, "message": message}
        log("azure.azcollection with cloud_environment=<emulator metadata URL>: %s" % ("works" if works else "fails: " + message))
    finally:
        proxy.stop()
        emulator.stop()
    return figures


def _fmt(run):
    return "writes=%-3d ARM requests=%-4d changed=%-3d wall=%6.2f s  in Azure: %d routes, %d subnets%s" % (
        run["writes"], run["arm_requests"], run["changed"], run["wall_s"], run["in_azure"]["routes"], run["in_azure"]["subnets"],
        "" if run["ok"] else "  FAILED")


def routes_rows(figures):
    anchor_name = "azure.azcollection %s" % figures["versions"]["azure.azcollection"]
    what = "route table %d routes + %d subnets" % (figures["routes"], figures["subnets"])
    rows = []
    for label, target in (("first", 4), ("rerun", 0)):
        ours, theirs = figures[f"ours_{label}"], figures[f"az_{label}"]
        done = ours["ok"] and ours["in_azure"] == {"routes": figures["routes"], "subnets": figures["subnets"]}
        name = "first run" if label == "first" else "rerun"
        rows.append(labbench.row(f"{what}, {name}: ARM writes", ours["writes"], target, done and ours["writes"] <= target,
                                 anchor=theirs["writes"] if theirs["ok"] else None, anchor_name=anchor_name, unit="writes"))
        rows.append(labbench.row(f"{what}, {name}: ARM requests", ours["arm_requests"], None, None,
                                 anchor=theirs["arm_requests"] if theirs["ok"] else None, anchor_name=anchor_name, unit="requests"))
        rows.append(labbench.row(f"{what}, {name}: wall time", ours["wall_s"], None, None,
                                 anchor=theirs["wall_s"] if theirs["ok"] else None, anchor_name=anchor_name, unit="s"))
        if label == "rerun":
            rows.append(labbench.row(f"{what}, rerun: changed module runs", ours["changed"], 0, ours["ok"] and ours["changed"] == 0,
                                     anchor=theirs["changed"] if theirs["ok"] else None, anchor_name=anchor_name))
    return rows


# ------------------------------------------------------------------ part cp (site.yml on the lab)
def recap(output):
    """(changed, failed + unreachable) summed over the PLAY RECAP of every host."""
    found = RECAP_RE.findall(output)
    return sum(int(item[2]) for item in found), sum(int(item[3]) + int(item[4]) for item in found)


def changed_tasks(output):
    """["task name (host)", ...] for every result the default callback reported as changed (handlers too)."""
    found, task = [], None
    for line in output.splitlines():
        header = re.match(r"^(?:TASK|RUNNING HANDLER) \[(.*)\]", line)
        if header:
            task = header.group(1)
        elif line.startswith("changed: ["):
            found.append("%s (%s)" % (task, line[len("changed: ["):].split("]", 1)[0]))
    return found


def lab_cli(command):
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "anycast_lab", command], cwd=ROOT, capture_output=True, text=True, check=False)
    if proc.returncode:
        sys.exit("python -m anycast_lab %s failed:\n%s" % (command, (proc.stdout + proc.stderr)[-3000:]))
    return time.monotonic() - started


def run_site():
    figures = {"regions": {}}
    log("waiting for the lab lock %s ..." % labbench.LOCK)
    with labbench.exclusive_lab():
        log("lab lock held; fresh lab: down, then up")
        figures["lab_down_s"] = round(lab_cli("down"), 1)
        figures["lab_up_s"] = round(lab_cli("up"), 1)
        log("lab down %.0f s, up %.0f s" % (figures["lab_down_s"], figures["lab_up_s"]))
        arm = labbench.lab().arm()
        for label in ("first", "rerun"):
            for region in labbench.regions():
                arm.clear_requests()
                code, seconds, output = labbench.site(region)
                changed, failed = recap(output)
                entries = arm.arm_requests()
                run = {"rc": code, "wall_s": round(seconds, 1), "changed": changed, "failed_hosts": failed,
                       "writes": sum(1 for entry in entries if entry["category"] == "write"), "arm_requests": len(entries),
                       "write_calls": ["%s %s" % (entry["method"], entry["path"]) for entry in entries if entry["category"] == "write"]}
                if label == "rerun":
                    run["changed_tasks"] = changed_tasks(output)
                os.makedirs(LOGS, exist_ok=True)
                with open(os.path.join(LOGS, "site-%s-%s.log" % (region.name, label)), "w", encoding="utf-8") as handle:
                    handle.write(output)
                figures["regions"].setdefault(region.name, {})[label] = run
                log("site.yml %-12s %-5s rc=%d writes=%-3d ARM requests=%-4d changed=%-3d wall=%6.1f s"
                    % (region.name, label, code, run["writes"], run["arm_requests"], changed, seconds))
                if code:
                    log(output[-3000:])
                for task in run.get("changed_tasks", []):
                    log("    changed on rerun: " + task)
        deadline = time.monotonic() + 60
        while not labbench.anycast_learned_from_both_regions() and time.monotonic() < deadline:
            time.sleep(0.5)
        figures["anycast_learned_from_both_regions"] = labbench.anycast_learned_from_both_regions()
        log("on-premises learns %s from both regions: %s" % (labbench.plan.ANYCAST_IP, figures["anycast_learned_from_both_regions"]))
    return figures


def site_rows(figures):
    rows = []
    for region, runs in figures["regions"].items():
        first, rerun = runs["first"], runs["rerun"]
        rows.append(labbench.row(f"site.yml {region}, first run (fresh lab): ARM writes", first["writes"], None, first["rc"] == 0, unit="writes"))
        rows.append(labbench.row(f"site.yml {region}, first run: ARM requests", first["arm_requests"], unit="requests"))
        rows.append(labbench.row(f"site.yml {region}, first run: wall time", first["wall_s"], unit="s"))
        rows.append(labbench.row(f"site.yml {region}, rerun: ARM writes", rerun["writes"], 0, rerun["rc"] == 0 and rerun["writes"] == 0, unit="writes"))
        rows.append(labbench.row(f"site.yml {region}, rerun: changed tasks", rerun["changed"], 0, rerun["rc"] == 0 and rerun["changed"] == 0))
        rows.append(labbench.row(f"site.yml {region}, rerun: ARM requests", rerun["arm_requests"], unit="requests"))
        rows.append(labbench.row(f"site.yml {region}, rerun: wall time", rerun["wall_s"], unit="s"))
    return rows


# ------------------------------------------------------------------ main
def previous():
    try:
        with open(os.path.join(labbench.RESULTS, NAME + ".json"), encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--part", choices=("cp", "routes", "all"), default="all",
                        help="cp: site.yml per lab region (takes the lab lock); routes: route table, ours beside azure.azcollection; all: both")
    args = parser.parse_args(argv)
    if not os.path.isdir(os.path.join(ROOT, ".build", "ansible_collections", "anycast", "nva")):
        sys.exit("run `make collection-link` first")
    old = previous()
    figures = {"site": old.get("site"), "route_table": old.get("route_table")}
    if args.part in ("routes", "all"):
        with tempfile.TemporaryDirectory(prefix="control-plane-bench-") as workdir:
            figures["route_table"] = dict(run_routes(workdir), finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    if args.part in ("cp", "all"):
        figures["site"] = dict(run_site(), finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    rows = (site_rows(figures["site"]) if figures["site"] else []) + (routes_rows(figures["route_table"]) if figures["route_table"] else [])
    print_table(rows)
    labbench.save(NAME, rows, **figures)
    return 1 if any(item["met"] is False for item in rows) else 0


def print_table(rows):
    width = max(len(item["metric"]) for item in rows) if rows else 10
    log("")
    log("%-*s  %10s  %12s  %6s  %s" % (width, "figure", "ours", "azcollection", "target", "met"))
    for item in rows:
        ours = "%g %s" % (item["ours"], item["unit"]) if item["unit"] in ("s",) else str(item["ours"])
        anchor = "-" if item["anchor"] is None else ("%g" % item["anchor"])
        log("%-*s  %10s  %12s  %6s  %s" % (width, item["metric"], ours, anchor, "-" if item["target"] is None else item["target"],
                                           "-" if item["met"] is None else ("yes" if item["met"] else "NO")))
    anchors = {item["anchor_name"] for item in rows if item["anchor_name"]}
    if anchors:
        log("azcollection column: " + ", ".join(sorted(anchors)))


if __name__ == "__main__":
    sys.exit(main())
