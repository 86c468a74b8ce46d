"""`make release-check`: what a team that installs anycast.nva from Galaxy gets, checked end to end.

Run from the repository root with the project's venv, which has the lab package (`make venv`; the Makefile does both):

1. `ansible-galaxy collection build` into a temp dir; the tarball holds what a user needs and none of
   the lab, tests, CI or developer files (galaxy.yml build_ignore).
2. A FRESH virtual environment: ansible-core in the supported range, the collection installed from the
   tarball with `ansible-galaxy collection install -p`, then the installed collection's requirements.txt.
3. `ansible-doc` of the installed content (modules and roles by FQCN).
4. A consumer playbook OUTSIDE the repository (copied from release/consumer/) against an ARM emulator
   started for the check: Azure modules in check mode and for real, idempotent reruns, a role's
   preflight with good and bad input; then an independent check of the emulator's state.
   Then the installed `anycast.nva.nat` role applied for real over SSH to one nspawn host of the lab
   machinery (anm-release, mgmt 198.18.1.88; lab/anycast_lab/hosts builds the root image on first use),
   twice (the rerun must change nothing), and a TCP request from a client namespace through the anycast IP.
5. `antsibull-docs lint-collection-docs --plugin-docs`, `antsibull-changelog lint`, and
   `antsibull-changelog release --version <galaxy version>` on a COPY of the tree (CHANGELOG.rst).
6. `ansible-builder introspect` of the installed collection (reads meta/execution-environment.yml) and
   `ansible-builder create` of an execution environment (definition v3) that installs the tarball.
   There is no container engine here: `create` only, never `build`.

Everything lives in one temp dir, removed on success (kept and printed on failure).
Environment: RELEASE_CHECK_ANSIBLE_CORE (pip spec, default the supported range), RELEASE_CHECK_KEEP=1.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

import yaml

from anycast_lab.arm.client import EmulatorProcess, default_topology, route_server_topology
from anycast_lab.paths import REPO as ROOT

ANSIBLE_CORE = os.environ.get("RELEASE_CHECK_ANSIBLE_CORE", "ansible-core>=2.17,<2.20")
MODULES = ["anycast_prefix_guard", "nic_ip_forwarding", "route_server", "route_server_info", "route_server_peer", "route_table", "sync_nsg"]
ROLES = ["bird", "conntrack_sync", "healthcheck", "nat"]
PLAYBOOKS = ["azure", "drain", "nva", "site", "status", "undrain"]
# Top-level entries (or paths) that must never be in the Galaxy artifact.
FORBIDDEN = ["lab/", "tests/", ".ci/", "extensions/", "bench/", "release/", ".venv/", ".build/", ".cache/", ".ansible/",
             ".pytest_cache/", ".benchmarks/", "docs/dev/", "changelogs/fragments/", "Makefile", "ansible.cfg",
             "requirements-dev.txt", ".gitignore", ".ansible-lint", "pytest.ini"]
REQUIRED = (["README.md", "requirements.txt", "bindep.txt", "meta/runtime.yml", "meta/execution-environment.yml",
             "changelogs/changelog.yaml", "changelogs/config.yaml", "plugins/doc_fragments/azure.py", "inventories/README.md",
             "monitoring/prometheus/anycast-nva.rules.yml", "monitoring/grafana/anycast-nva-region.json"]
            + [f"plugins/modules/{m}.py" for m in MODULES] + [f"playbooks/{p}.yml" for p in PLAYBOOKS]
            + [f"roles/{r}/{f}" for r in ROLES for f in ("meta/argument_specs.yml", "meta/main.yml", "tasks/main.yml",
                                                         "tasks/preflight.yml", "defaults/main.yml", "README.md")])
# Every file of these directories (as git knows them) must be shipped.
SHIPPED_DIRS = ("plugins/", "roles/", "playbooks/", "meta/", "inventories/", "monitoring/")

TIMINGS = []


class CheckError(RuntimeError):
    """One release check failed; the message says which and why."""


def step(name):
    """Decorator-free timer: `with step('x'):` prints the step and records its duration."""
    return _Step(name)


class _Step:
    def __init__(self, name):
        self.name = name
        self.started = 0.0

    def __enter__(self):
        self.started = time.monotonic()
        print(f"== {self.name}", flush=True)
        return self

    def __exit__(self, exc_type, exc, tb):
        elapsed = time.monotonic() - self.started
        TIMINGS.append((self.name, elapsed, exc_type is None))
        print(f"   {'ok' if exc_type is None else 'FAILED'} in {elapsed:.1f} s", flush=True)
        return False


def run(cmd, cwd=None, env=None, timeout=900, expect_rc=0):
    """Run a command; raise CheckError with its output when the exit code is not the expected one."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if expect_rc is not None and proc.returncode != expect_rc:
        raise CheckError(f"{' '.join(cmd)} exited {proc.returncode} (expected {expect_rc})\n"
                         f"--- stdout\n{proc.stdout[-6000:]}\n--- stderr\n{proc.stderr[-4000:]}")
    return proc


def expect(condition, message):
    if not condition:
        raise CheckError(message)


def clean_env(venv, collections):
    """The consumer's environment: the fresh venv first on PATH, nothing of the repository's Ansible settings."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("ANSIBLE_", "AZURE_", "PYTHON", "VIRTUAL_ENV")) and key not in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")}
    env["PATH"] = os.path.join(venv, "bin") + os.pathsep + env.get("PATH", "/usr/bin:/bin")
    env["VIRTUAL_ENV"] = venv
    env["ANSIBLE_COLLECTIONS_PATH"] = collections
    env["ANSIBLE_COLLECTIONS_SCAN_SYS_PATH"] = "false"
    env["ANSIBLE_ROLES_PATH"] = os.path.join(os.path.dirname(collections), "roles")
    env["ANSIBLE_LOCAL_TEMP"] = os.path.join(os.path.dirname(collections), "ansible-tmp")
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_HOST_KEY_CHECKING"] = "false"
    return env


def galaxy_version():
    with open(os.path.join(ROOT, "galaxy.yml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle)["version"]


def tree_files():
    """Files a fresh clone would have, plus new files not yet committed (what `make sanity` copies)."""
    out = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT).stdout
    return sorted(p for p in out.split("\0") if p and os.path.isfile(os.path.join(ROOT, p)))


def build(tmp):
    out_dir = os.path.join(tmp, "dist")
    os.makedirs(out_dir)
    run([os.path.join(sys.prefix, "bin", "ansible-galaxy"), "collection", "build", "--output-path", out_dir, ROOT], cwd=tmp)
    tarballs = [f for f in os.listdir(out_dir) if f.endswith(".tar.gz")]
    expect(tarballs == [f"anycast-nva-{galaxy_version()}.tar.gz"], f"unexpected build output: {tarballs}")
    tarball = os.path.join(out_dir, tarballs[0])
    with tarfile.open(tarball) as archive:
        names = [m.name + ("/" if m.isdir() else "") for m in archive.getmembers()]
    files = {n for n in names if not n.endswith("/")}
    bad = sorted(n for n in names if any(n == f or n.startswith(f) for f in FORBIDDEN) or "__pycache__" in n or n.endswith(".pyc"))
    expect(not bad, f"the tarball ships files a Galaxy user must not get (galaxy.yml build_ignore): {bad[:20]}")
    missing = sorted(set(REQUIRED) - files)
    expect(not missing, f"the tarball lacks files a user needs: {missing}")
    unshipped = sorted(p for p in tree_files() if p.startswith(SHIPPED_DIRS) and p not in files and not p.endswith(".pyc"))
    expect(not unshipped, f"files of the repository missing from the tarball: {unshipped}")
    print(f"   {tarball}: {len(files)} files, {os.path.getsize(tarball) // 1024} KiB")
    return tarball


def fresh_venv(tmp, tarball):
    venv = os.path.join(tmp, "venv")
    collections = os.path.join(tmp, "collections")
    run([os.path.join(sys.base_prefix, "bin", "python3"), "-m", "venv", venv])
    pip = [os.path.join(venv, "bin", "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-compile"]
    run(pip + [ANSIBLE_CORE, "ansible-builder>=3.1,<4"])
    env = clean_env(venv, collections)
    run([os.path.join(venv, "bin", "ansible-galaxy"), "collection", "install", tarball, "-p", collections], cwd=tmp, env=env)
    installed = os.path.join(collections, "ansible_collections", "anycast", "nva")
    expect(os.path.isfile(os.path.join(installed, "MANIFEST.json")), f"the collection was not installed into {installed}")
    run(pip + ["-r", os.path.join(installed, "requirements.txt")])
    version = run([os.path.join(venv, "bin", "ansible"), "--version"], env=env).stdout.splitlines()[0]
    listed = run([os.path.join(venv, "bin", "ansible-galaxy"), "collection", "list", "anycast.nva", "-p", collections], env=env).stdout
    expect(f"anycast.nva {galaxy_version()}" in " ".join(listed.split()), f"ansible-galaxy collection list does not show anycast.nva:\n{listed}")
    python = run([os.path.join(venv, "bin", "python"), "--version"]).stdout.strip()
    print(f"   {version}; {python}; anycast.nva {galaxy_version()} in {collections}")
    return venv, collections, env


def ansible_doc(venv, env):
    doc = os.path.join(venv, "bin", "ansible-doc")
    listed = json.loads(run([doc, "-l", "anycast.nva", "--json"], env=env).stdout)
    expect(sorted(listed) == [f"anycast.nva.{m}" for m in MODULES], f"ansible-doc -l anycast.nva lists {sorted(listed)}")
    roles = json.loads(run([doc, "-t", "role", "-l", "anycast.nva", "--json"], env=env).stdout)
    expect(sorted(roles) == [f"anycast.nva.{r}" for r in ROLES], f"ansible-doc -t role -l anycast.nva lists {sorted(roles)}")
    bird = re.sub(r"\x1b\[[0-9;]*m|\*", "", run([doc, "-t", "role", "anycast.nva.bird"], env=env).stdout)  # bold: ANSI or *x*
    for needle in ("ENTRY POINT: main", "bird_anycast_prefixes", "bird_route_server_ips", "bird_local_asn"):
        expect(needle in bird, f"ansible-doc -t role anycast.nva.bird lacks {needle!r}:\n{bird[:2000]}")
    table = json.loads(run([doc, "--json", "anycast.nva.route_table"], env=env).stdout)["anycast.nva.route_table"]
    expect("routes" in table["doc"]["options"] and table["examples"] and table["return"],
           "ansible-doc anycast.nva.route_table lacks options, examples or return values")
    expect("ca_bundle" in table["doc"]["options"], "the azure doc fragment is not applied in the installed collection")


def consumer(tmp, venv, env):
    """The consumer playbook, outside the repository, against an emulator started for it."""
    work = os.path.join(tmp, "consumer")
    shutil.copytree(os.path.join(ROOT, "release", "consumer"), work)
    emulator = EmulatorProcess(os.path.join(tmp, "arm"))
    emulator.start()
    try:
        emulator.seed(default_topology())
        emulator.seed(route_server_topology())
        emulator.clear_requests()
        result_file = os.path.join(work, "result.json")
        extra = {"release_arm": {"endpoint": emulator.endpoint, "ca_bundle": emulator.ca_bundle,
                                 "subscription_id": emulator.subscription_id, "tenant_id": emulator.tenant_id,
                                 "client_id": emulator.client_id, "client_secret": emulator.client_secret},
                 "release_result_file": result_file}
        with open(os.path.join(work, "release-vars.json"), "w", encoding="utf-8") as handle:
            json.dump(extra, handle)
        proc = run([os.path.join(venv, "bin", "ansible-playbook"), "-i", "inventory.yml", "playbook.yml", "-e", "@release-vars.json"],
                   cwd=work, env=env, timeout=600)
        recap = proc.stdout[proc.stdout.rfind("PLAY RECAP"):]
        expect("failed=0" in recap and "unreachable=0" in recap, f"consumer playbook recap:\n{recap}")
        with open(result_file, encoding="utf-8") as handle:
            result = json.load(handle)
        expect(result == {"peers": ["nva1"], "route_table": "rt-spoke-app", "preflight_cases": 3}, f"consumer result: {result}")
        # independent check with the SDK, not through the collection
        network = emulator.network_client(polling_interval=0.1)
        group = emulator.resource_group
        peers = sorted((c.name, c.peer_ip, c.peer_asn) for c in network.virtual_hub_bgp_connections.list(group, "rs-weu"))
        expect(peers == [("nva1", "10.10.2.4", 65001)], f"peers in ARM after the consumer: {peers}")
        table = network.route_tables.get(group, "rt-spoke-app")
        expect([(r.address_prefix, r.next_hop_ip_address) for r in table.routes] == [("172.16.0.0/16", "10.10.2.4")], f"routes: {table.routes}")
        subnet = network.subnets.get(group, "vnet-spoke-weu", "snet-app")
        expect(subnet.route_table is not None and subnet.route_table.id.endswith("/routeTables/rt-spoke-app"), "snet-app is not associated")
        writes = [(r["method"], r["path"].split("?")[0].rsplit("/", 2)[-2]) for r in emulator.arm_requests("write")]
        # one peer PUT, one route table PUT, one subnet PUT: check mode and reruns wrote nothing
        expect(len(writes) == 3, f"ARM writes of the consumer run (expected 3): {writes}")
        tasks = proc.stdout.count("\nTASK [")
        print(f"   consumer playbook: {tasks} tasks, failed=0; ARM writes {len(writes)}; peer and route table confirmed with the SDK")
    finally:
        emulator.stop()


NVA_SPEC = {
    "prefix": "anm-release",
    "mgmt": {"bridge": "anm-mgmt", "address": "198.18.1.1/24"},
    "segments": ["lan"],
    "nodes": [
        {"name": "nva1", "kind": "host", "mgmt_ip": "198.18.1.88", "groups": ["nva"],
         "interfaces": [{"name": "eth1", "segment": "lan", "address": "10.10.2.4/24"}], "lo_addresses": ["10.250.0.10/32"]},
        {"name": "be1", "kind": "netns", "interfaces": [{"name": "eth0", "segment": "lan", "address": "10.10.2.20/24"}],
         "services": [{"name": "app", "kind": "command", "argv": ["socat", "TCP-LISTEN:8080,fork,reuseaddr", "SYSTEM:echo be1"]}]},
        {"name": "client", "kind": "netns", "interfaces": [{"name": "eth0", "segment": "lan", "address": "10.10.2.30/24"}],
         "routes": [{"to": "10.250.0.10/32", "via": "10.10.2.4"}]},
    ],
}


def nva_role(tmp, venv, env):
    """The installed nat role applied for real to one nspawn host of the lab machinery, twice, then a request through it."""
    from anycast_lab.hosts import Topology, teardown  # pylint: disable=import-outside-toplevel
    work = os.path.join(tmp, "consumer")
    spec_path = os.path.join(tmp, "nva-topology.yml")
    with open(spec_path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(NVA_SPEC, handle)
    teardown(NVA_SPEC["prefix"], None, NVA_SPEC["mgmt"]["bridge"])  # what a crashed earlier run left behind
    topo = Topology.from_file(spec_path, os.path.join(tmp, "hosts-state"))
    try:
        topo.up()
        cmd = [os.path.join(venv, "bin", "ansible-playbook"), "-i", topo.inventory_path, "nva.yml"]
        recaps = []
        for attempt in ("first run", "rerun"):
            proc = run(cmd, cwd=work, env=env, timeout=600)
            recaps.append(proc.stdout[proc.stdout.rfind("PLAY RECAP"):])
            print(f"   nat role, {attempt}: {' '.join(recaps[-1].split()[3:])}")
        expect("failed=0" in recaps[0] and "changed=0" not in recaps[0], f"first run of the nat role:\n{recaps[0]}")
        expect("failed=0" in recaps[1] and "changed=0" in recaps[1], f"second run of the nat role is not idempotent:\n{recaps[1]}")
        answer = run(["ip", "netns", "exec", topo.netns("client"), "socat", "-T5", "-", "TCP:10.250.0.10:80,connect-timeout=5"], timeout=30).stdout
        expect(answer.strip() == "be1", f"a request to 10.250.0.10:80 from the client got {answer!r}, not the backend's answer")
        print("   nat role: applied over SSH (changed), rerun changed=0, 10.250.0.10:80 from the client answered by be1")
    finally:
        topo.down()


def docs_lint():
    proc = run([os.path.join(sys.prefix, "bin", "antsibull-docs"), "lint-collection-docs", "--plugin-docs", "."], cwd=ROOT)
    expect(proc.stdout.strip() == "" and proc.stderr.strip() == "", f"antsibull-docs lint output:\n{proc.stdout}{proc.stderr}")


def changelog(tmp):
    changelog_bin = os.path.join(sys.prefix, "bin", "antsibull-changelog")
    proc = run([changelog_bin, "lint"], cwd=ROOT)
    expect(proc.stdout.strip() == "", f"antsibull-changelog lint:\n{proc.stdout}")
    copy = os.path.join(tmp, "changelog-copy")
    for path in tree_files():
        os.makedirs(os.path.dirname(os.path.join(copy, path)), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, path), os.path.join(copy, path))
    fragments = [f for f in os.listdir(os.path.join(copy, "changelogs", "fragments")) if f.endswith(".yml")]
    version = galaxy_version()
    run([changelog_bin, "release", "--version", version, "--date", time.strftime("%Y-%m-%d")], cwd=copy, env=dict(os.environ, ANSIBLE_CONFIG=""))
    with open(os.path.join(copy, "CHANGELOG.rst"), encoding="utf-8") as handle:
        text = handle.read()
    with open(os.path.join(copy, "changelogs", "changelog.yaml"), encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    expect(f"v{version}" in text and "Major Changes" in text, f"CHANGELOG.rst lacks the release or its sections:\n{text[:1500]}")
    expect(sorted(data["releases"][version]["fragments"]) == sorted(fragments), "changelog.yaml does not list every fragment")
    for module in MODULES:
        expect(f"anycast.nva.{module}" in text, f"CHANGELOG.rst does not list the new module {module}")
    for role in ROLES:  # antsibull-changelog does not detect new roles: their fragments announce them
        expect(f"{role} - new role" in text, f"CHANGELOG.rst does not announce the new role {role}")
    left = [f for f in os.listdir(os.path.join(copy, "changelogs", "fragments")) if f.endswith(".yml")]
    expect(not left, f"fragments left after the release in the copy: {left}")
    still = [f for f in os.listdir(os.path.join(ROOT, "changelogs", "fragments")) if f.endswith(".yml")]
    expect(sorted(still) == sorted(fragments), "the repository's fragments changed")
    print(f"   {len(fragments)} fragments -> CHANGELOG.rst ({len(text.splitlines())} lines), repository untouched")


def execution_environment(tmp, venv, collections, tarball, env):
    installed = os.path.join(collections, "ansible_collections", "anycast", "nva")
    builder = os.path.join(venv, "bin", "ansible-builder")
    found = yaml.safe_load(run([builder, "introspect", collections], env=env).stdout)
    with open(os.path.join(installed, "requirements.txt"), encoding="utf-8") as handle:
        wanted_python = [line.strip() for line in handle if line.strip() and not line.startswith("#")]
    with open(os.path.join(installed, "bindep.txt"), encoding="utf-8") as handle:
        wanted_system = [line.strip() for line in handle if line.strip() and not line.startswith("#")]
    origin = "  # from collection anycast.nva"
    expect(found.get("python") == [line + origin for line in wanted_python], f"ansible-builder introspect, python: {found}")
    expect(found.get("system") == [line + origin for line in wanted_system], f"ansible-builder introspect, system: {found}")

    ee_dir = os.path.join(tmp, "ee")
    os.makedirs(ee_dir)
    shutil.copy2(tarball, ee_dir)
    shutil.copy2(os.path.join(installed, "requirements.txt"), os.path.join(ee_dir, "requirements.txt"))
    shutil.copy2(os.path.join(installed, "bindep.txt"), os.path.join(ee_dir, "bindep.txt"))
    definition = {
        "version": 3,
        "images": {"base_image": {"name": "quay.io/fedora/python-311:latest"}},
        "dependencies": {
            "ansible_core": {"package_pip": ANSIBLE_CORE},
            "ansible_runner": {"package_pip": "ansible-runner"},
            "python": "requirements.txt",
            "system": "bindep.txt",
            "galaxy": {"collections": [{"name": f"/build/{os.path.basename(tarball)}", "type": "file"}]},
        },
        # lands in _build/, which the galaxy stage copies to /build before `ansible-galaxy collection install`
        "additional_build_files": [{"src": os.path.basename(tarball), "dest": "."}],
    }
    with open(os.path.join(ee_dir, "execution-environment.yml"), "w", encoding="utf-8") as handle:
        yaml.safe_dump(definition, handle, sort_keys=False)
    run([builder, "create", "-f", "execution-environment.yml", "-c", "context", "--output-filename", "Containerfile"], cwd=ee_dir, env=env)
    context = os.path.join(ee_dir, "context")
    build_dir = os.path.join(context, "_build")
    with open(os.path.join(context, "Containerfile"), encoding="utf-8") as handle:
        containerfile = handle.read()
    for name, wanted in (("requirements.txt", wanted_python), ("bindep.txt", wanted_system)):
        with open(os.path.join(build_dir, name), encoding="utf-8") as handle:
            got = handle.read()
        expect(all(line in got for line in wanted), f"context/_build/{name} lacks the collection's lines: {got}")
    expect(os.path.isfile(os.path.join(build_dir, os.path.basename(tarball))), "the tarball is not in the build context")
    with open(os.path.join(build_dir, "requirements.yml"), encoding="utf-8") as handle:
        expect(os.path.basename(tarball) in handle.read(), "context/_build/requirements.yml does not install the tarball")
    for needle in ("COPY _build /build", "ansible-galaxy collection install", "introspect", "assemble"):
        expect(needle in containerfile, f"the Containerfile lacks {needle!r}")
    print(f"   introspect: {len(wanted_python)} Python and {len(wanted_system)} system requirements; "
          f"context {context} ({len(os.listdir(build_dir))} files in _build); no container engine here: create only, not build")


def main():
    started = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="anycast-nva-release-")
    ok = False
    try:
        with step("build the collection (ansible-galaxy collection build) and check its contents"):
            tarball = build(tmp)
        with step("fresh virtual environment: ansible-core, ansible-builder, the tarball, its requirements.txt"):
            venv, collections, env = fresh_venv(tmp, tarball)
        with step("ansible-doc of the installed modules and roles"):
            ansible_doc(venv, env)
        with step("consumer playbook outside the repository against an ARM emulator"):
            consumer(tmp, venv, env)
        with step("the installed nat role applied to a lab NVA (nspawn host), twice, and a request through it"):
            nva_role(tmp, venv, env)
        with step("antsibull-docs lint-collection-docs --plugin-docs"):
            docs_lint()
        with step("antsibull-changelog lint; release on a copy of the tree"):
            changelog(tmp)
        with step("ansible-builder introspect and create (execution environment)"):
            execution_environment(tmp, venv, collections, tarball, env)
        ok = True
    except (CheckError, subprocess.TimeoutExpired) as exc:
        print(f"release-check FAILED: {exc}", file=sys.stderr)
    finally:
        print("\nrelease-check timings:")
        for name, elapsed, passed in TIMINGS:
            print(f"  {elapsed:7.1f} s  {'ok    ' if passed else 'FAILED'}  {name}")
        print(f"  {time.monotonic() - started:7.1f} s  total")
        if ok and os.environ.get("RELEASE_CHECK_KEEP") != "1":
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"  work dir kept: {tmp}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
