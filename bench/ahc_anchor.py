"""The anchor of the failover benchmark: anycast-healthchecker (PyPI) on a lab region's NVAs instead of our checker.

What it does to each NVA of the region, and undoes in `restore()`:
- copies anycast-healthchecker and its dependencies (pure-Python wheels downloaded here with pip: the NVAs
  cannot reach PyPI) to /opt/anycast-bench-ahc/site;
- writes its prefix-list include (/var/lib/anycast-healthchecker/anycast-prefixes.conf, its default path and
  its default variable ACAST_PS_ADVERTISE) and a bird.conf that differs from the role's in two places only:
  the include and the test in the export filter (`net !~ ACAST_PS_ADVERTISE` instead of `ANYCAST_<ip> < 1`);
- stops our anycast-healthcheck service and runs anycast-healthchecker as a transient systemd unit.
`restore()` starts our service, waits until it announces again, puts the role's bird.conf back byte for byte,
reconfigures BIRD and removes every file above.
"""
import hashlib
import io
import os
import re
import shlex
import subprocess
import sys
import tarfile
import time

from anycast_lab.hosts.host import ssh_argv
from anycast_lab.paths import REPO as ROOT
from anycast_lab.regions import plan

VERSION = "0.9.10"
NAME = f"anycast-healthchecker {VERSION}"
CACHE = os.path.join(ROOT, ".cache", "ahc-bench")
UNIT = "anycast-bench-ahc"
OPT = "/opt/anycast-bench-ahc"
ETC = "/etc/anycast-bench-ahc"
# anycast-healthchecker's own defaults for these two paths (its DEFAULT_OPTIONS): left as they are.
PREFIX_FILE = "/var/lib/anycast-healthchecker/anycast-prefixes.conf"
PID_DIR = "/var/run/anycast-healthchecker"
VARIABLE = "ACAST_PS_ADVERTISE"
DUMMY = "10.189.200.255/32"  # its dummy_ip_prefix default: keeps the BIRD list from ever being empty
BIRD_CONF = "/etc/bird/bird.conf"
LIVE_FILE = "/run/anycast-nva/announce.conf"
OURS = "anycast-healthcheck"
ANYCAST = plan.ANYCAST_IP

# Verified in its source (anycast_healthchecker/__init__.py DEFAULT_OPTIONS, servicecheck.py): check_interval and
# check_timeout are read with getfloat, so fractional intervals are accepted.
DEFAULTS = {"check_interval": 10, "check_timeout": 2, "check_rise": 2, "check_fail": 2}


def site_packages():
    """anycast-healthchecker and its dependencies installed into a local directory (downloaded once, then cached)."""
    wheels, site = os.path.join(CACHE, "wheels"), os.path.join(CACHE, f"site-{VERSION}")
    if os.path.isdir(os.path.join(site, "anycast_healthchecker")):
        return site
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(pip + ["download", f"anycast-healthchecker=={VERSION}", "-d", wheels], check=True)
    # docopt is published as an sdist only: make it a wheel here so the install below needs no network.
    for sdist in [name for name in os.listdir(wheels) if name.endswith(".tar.gz")]:
        subprocess.run(pip + ["wheel", "--no-deps", "-w", wheels, os.path.join(wheels, sdist)], check=True)
    subprocess.run(pip + ["install", "--no-index", "--find-links", wheels, "--target", site, f"anycast-healthchecker=={VERSION}"], check=True)
    return site


def _tarball(directory):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(directory, arcname=".", filter=lambda info: None if "__pycache__" in info.name else info)
    return buf.getvalue()


def anchor_bird_conf(original):
    """The role's bird.conf with anycast-healthchecker's prefix list deciding the export instead of anycast_state()."""
    text = original.replace(f'include "{LIVE_FILE}";', f'include "{PREFIX_FILE}";')
    text = text.replace("if anycast_state(net) < 1 then reject;", f"if net !~ {VARIABLE} then reject;")
    # Keep the static prepend count (bird_prepend_count), drop the checker's dynamic part.
    text = re.sub(r"anycast_prepend\((\d+) \+ anycast_state\(net\) - 1\);", r"anycast_prepend(\1);", text)
    code = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    if any("anycast_state" in line for line in code) or PREFIX_FILE not in text:
        raise RuntimeError("the role's bird.conf does not have the expected include/filter shape; see roles/bird/templates/bird.conf.j2")
    return "# anycast.nva failover benchmark: anycast-healthchecker's prefix list decides the export (restored afterwards).\n" + text


def prefix_file(prefixes):
    """The include in anycast-healthchecker's own format (its parser reads one prefix per line)."""
    body = ",\n".join(" " * 8 + item for item in [DUMMY] + list(prefixes))
    return f"# written by the anycast.nva failover benchmark in anycast-healthchecker's format\ndefine {VARIABLE} =\n    [\n{body}\n    ];\n"


def daemon_conf():
    # Every daemon option at its default: the section only has to exist.
    return "[daemon]\n"


def service_conf(region, settings):
    """One service check: curl the region's backend, as its README's examples do; timing from `settings` (empty = defaults)."""
    timeout = settings.get("check_timeout", DEFAULTS["check_timeout"])
    lines = [f"[app.{region.name}]",
             f"check_cmd = curl -fsS -o /dev/null -m {timeout} http://{region.backend_ip}/",
             # check_disabled defaults to true (a check must be enabled explicitly): the one option we must set.
             "check_disabled = false",
             f"ip_prefix = {ANYCAST}/32"]
    lines += [f"{key} = {value}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


class Nva:
    """SSH to one lab NVA (as root, with the lab's key)."""

    def __init__(self, topo, name):
        self.name = name
        self.host = topo.host(name)

    def sh(self, script, stdin=None, check=True, timeout=60):
        proc = subprocess.run(ssh_argv(self.host.key, self.host.mgmt_ip, ["sh", "-c", script]), input=stdin,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False, timeout=timeout,
                              text=not isinstance(stdin, bytes))
        if check and proc.returncode != 0:
            raise RuntimeError(f"{self.name}: `{script}` failed (exit {proc.returncode}): {proc.stderr!r}")
        return proc.stdout.decode() if isinstance(proc.stdout, bytes) else proc.stdout

    def write(self, path, text):
        # `cat >` into an existing file keeps its owner and mode (bird.conf is root:bird 0640).
        self.sh(f"cat > {shlex.quote(path)}", stdin=text)

    def birdc_configure(self):
        out = self.sh("birdc configure")
        if "Reconfigured" not in out:
            raise RuntimeError(f"{self.name}: birdc configure: {out.strip()}")

    def main_pid(self, unit):
        return int(self.sh(f"systemctl show -p MainPID --value {unit}").strip() or 0)

    def kill9(self, unit):
        """SIGKILL the unit's main process; the NVA's own clock (same kernel clock as here) stamps the kill."""
        out = self.sh(f'pid=$(systemctl show -p MainPID --value {unit}); [ "$pid" -gt 0 ] || exit 3; date +%s.%N; exec kill -9 "$pid"')
        return float(out.split()[0])

    def metrics(self):
        """Our daemon's Prometheus metrics (its metrics_listen, 127.0.0.1:9469 in the lab), {name{labels}: value}."""
        out = self.sh("curl -fsS -m 5 http://127.0.0.1:9469/metrics")
        values = {}
        for line in out.splitlines():
            if line and not line.startswith("#"):
                key, _sep, value = line.rpartition(" ")
                values[key] = float(value)
        return values


class Anchor:
    """anycast-healthchecker instead of our checker on every NVA of `region`."""

    def __init__(self, topo, region, log=print):
        self.region = region
        self.nvas = [Nva(topo, name) for name, *_rest in region.nvas]
        self.log = log
        self.originals = {}
        self.settings = None

    def install(self):
        site = _tarball(site_packages())
        for nva in self.nvas:
            original = nva.sh(f"cat {BIRD_CONF}")
            self.originals[nva.name] = original
            nva.sh(f"mkdir -p {OPT}/site {ETC}/checks.d {os.path.dirname(PREFIX_FILE)} {PID_DIR} && tar -C {OPT}/site -xzf -", stdin=site)
            nva.write(f"{ETC}/bird.conf.orig", original)
            # Announced (as the application is healthy now), so handing over from our checker moves no traffic.
            nva.write(PREFIX_FILE, prefix_file([f"{ANYCAST}/32"]))
            nva.write(f"{ETC}/bird.conf.anchor", anchor_bird_conf(original))
            nva.sh(f"bird -p -c {ETC}/bird.conf.anchor")
            nva.write(BIRD_CONF, anchor_bird_conf(original))
            nva.birdc_configure()
            # Its ExecStopPost withdraws in the live file, which BIRD no longer reads.
            nva.sh(f"systemctl stop {OURS}")
        self.log(f"{NAME} installed on {', '.join(n.name for n in self.nvas)}; {OURS} stopped there")

    def start(self, settings):
        """(Re)start anycast-healthchecker on every NVA with these service-check settings ({} = its defaults)."""
        self.settings = dict(settings)
        for nva in self.nvas:
            self._stop_unit(nva)
            nva.write(f"{ETC}/anycast-healthchecker.conf", daemon_conf())
            nva.write(f"{ETC}/checks.d/app.conf", service_conf(self.region, settings))
            nva.sh(f"PYTHONPATH={OPT}/site python3 -m anycast_healthchecker.main -f {ETC}/anycast-healthchecker.conf -d {ETC}/checks.d -c")
            self._start_unit(nva)

    def _start_unit(self, nva):
        nva.sh(f"systemd-run --quiet --unit={UNIT} --collect --setenv=PYTHONPATH={OPT}/site "
               f"python3 -m anycast_healthchecker.main -f {ETC}/anycast-healthchecker.conf -d {ETC}/checks.d")

    def restart(self, nva):
        self._stop_unit(nva)
        self._start_unit(nva)

    @staticmethod
    def _stop_unit(nva):
        nva.sh(f"systemctl stop {UNIT} 2>/dev/null; systemctl reset-failed {UNIT} 2>/dev/null; true")

    def urgent(self):
        """SIGURG: anycast-healthchecker runs every check at once (used only to bring the route back between trials)."""
        for nva in self.nvas:
            nva.sh(f'pid=$(systemctl show -p MainPID --value {UNIT}); [ "$pid" -gt 0 ] && kill -URG "$pid"; true')

    def restore(self):
        """Our checker back, the role's bird.conf back (byte for byte), BIRD reconfigured, the anchor's files gone."""
        errors = []
        for nva in self.nvas:
            try:
                restore_nva(nva, self.originals.get(nva.name), self.log)
            except Exception as exc:  # pylint: disable=broad-except  # restore the other NVA all the same
                errors.append(f"{nva.name}: {exc}")
        if errors:
            raise RuntimeError("restore failed: " + "; ".join(errors))


def restore_nva(nva, original=None, log=print):
    """Undo Anchor.install on one NVA (also from the backup on the NVA, after an interrupted run)."""
    Anchor._stop_unit(nva)  # pylint: disable=protected-access
    if original is None:
        original = nva.sh(f"cat {ETC}/bird.conf.orig 2>/dev/null || true") or None
    nva.sh(f"systemctl start {OURS}")
    if original is not None and nva.sh(f"cat {BIRD_CONF}") != original:
        # Our checker announces (rise) before BIRD reads its live file again: no withdraw on the way back.
        deadline = time.monotonic() + 30
        while "= 1;" not in nva.sh(f"cat {LIVE_FILE}") and time.monotonic() < deadline:
            time.sleep(0.2)
        nva.write(BIRD_CONF, original)
        nva.birdc_configure()
        if hashlib.sha256(nva.sh(f"cat {BIRD_CONF}").encode()).hexdigest() != hashlib.sha256(original.encode()).hexdigest():
            raise RuntimeError(f"{nva.name}: bird.conf differs from the role's after the restore")
    nva.sh(f"rm -rf {OPT} {ETC} {os.path.dirname(PREFIX_FILE)} {PID_DIR}")
    state = nva.sh(f"systemctl is-active {OURS} || true").strip()
    log(f"{nva.name}: {OURS} {state}, role's bird.conf in place, {NAME} removed")
