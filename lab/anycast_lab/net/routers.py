"""The lab's BIRD daemons: where their files live, starting them in a namespace, reconfiguring them live.

Each router has a name (we-rs0, we-rs1, ne-rs0, ne-rs1, er, onprem), a namespace, a config file and a
control socket under <lab dir>/bird/. Reconfiguring goes through `birdc configure`, so a new or removed
peer never resets the other sessions.
"""
import os
import subprocess

from ..hosts.util import LabError, run
from . import birdconf, plan

DEFAULT_LAB_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))), ".cache", "lab")


def lab_dir():
    """The lab's working directory (emulator state, BIRD files): $ANYCAST_LAB_DIR or <repo>/.cache/lab."""
    return os.environ.get("ANYCAST_LAB_DIR", DEFAULT_LAB_DIR)


def speaker_name(region, instance):
    return f"{region.short}-rs{instance}"


def all_routers():
    """(name, namespace) of every BIRD router of the lab."""
    routers = [(speaker_name(reg, i), reg.fabric_ns) for reg in plan.REGIONS for i in (0, 1)]
    return routers + [("er", plan.EDGE_NS), ("onprem", plan.ONPREM_NS)]


def conf_path(name, base=None):
    return os.path.join(base or lab_dir(), "bird", f"{name}.conf")


def ctl_path(name, base=None):
    return os.path.join(base or lab_dir(), "bird", f"{name}.ctl")


def birdc(name, *command, base=None, check=True):
    """Output of `birdc` for a router (the socket is a file: no need to enter the namespace)."""
    proc = run(["birdc", "-s", ctl_path(name, base)] + list(command), check=check)
    return proc.stdout


def write_config(name, text, base=None):
    """Validate and install a config; True when it changed (the caller then reconfigures)."""
    path = conf_path(name, base)
    try:
        with open(path, encoding="utf-8") as handle:
            if handle.read() == text:
                return False
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".new"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
    proc = subprocess.run(["bird", "-p", "-c", tmp], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise LabError(f"generated BIRD config for {name} does not parse: {proc.stderr.strip()}")
    os.replace(tmp, path)
    return True


def running(name, base=None):
    return os.path.exists(ctl_path(name, base)) and subprocess.run(
        ["birdc", "-s", ctl_path(name, base), "show", "status"], capture_output=True, check=False).returncode == 0


def start(name, namespace, base=None):
    """Start BIRD for a router inside its namespace (it daemonizes), unless it already runs."""
    if running(name, base):
        return
    run(["ip", "netns", "exec", namespace, "bird", "-c", conf_path(name, base), "-s", ctl_path(name, base),
         "-P", os.path.join(base or lab_dir(), "bird", f"{name}.pid")])


def configure(name, base=None):
    """Apply the installed config live (`birdc configure`): sessions whose settings did not change stay up."""
    if running(name, base):
        out = birdc(name, "configure", base=base)
        if "Reconfigured" not in out and "Reconfiguration in progress" not in out:
            raise LabError(f"birdc configure on {name}: {out.strip()}")


def stop(name, base=None):
    pid_file = os.path.join(base or lab_dir(), "bird", f"{name}.pid")
    if running(name, base):
        birdc(name, "down", base=base, check=False)
    for path in (pid_file, ctl_path(name, base)):
        if os.path.exists(path):
            os.unlink(path)


def fixed_configs():
    """Configs that do not depend on ARM state."""
    return {"er": birdconf.edge(), "onprem": birdconf.onprem()}
