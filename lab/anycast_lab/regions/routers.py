"""The lab's BIRD routers: their configs under <lab dir>/bird/, run by the host machinery as `bird` services.

Names: we-rs0, we-rs1, ne-rs0, ne-rs1 (Route Server instances, services rs0/rs1 of node <region>-hub),
er (ExpressRoute edge) and onprem. Reconfiguring goes through `birdc configure`, so a new or removed
peer never resets the other sessions.
"""
import os
import subprocess

from ..hosts.topology import Topology
from ..hosts.util import LabError, run
from ..paths import lab_dir
from . import birdconf, plan


def speaker_name(region, instance):
    return f"{region.short}-rs{instance}"


def names():
    """Every BIRD router of the lab."""
    return [speaker_name(reg, i) for reg in plan.REGIONS for i in (0, 1)] + ["er", "onprem"]


def node_service(name):
    """(topology node, service) running a router."""
    if "-rs" in name:
        short, instance = name.split("-rs")
        return f"{short}-hub", f"rs{instance}"
    return name, "bird"


def conf_rel(name):
    """Config path relative to the lab dir (where the topology spec is written)."""
    return os.path.join("bird", f"{name}.conf")


def conf_path(name, base=None):
    return os.path.join(base or lab_dir(), conf_rel(name))


def ctl_path(name, base=None):
    # The host machinery places the control socket; ask it rather than guess.
    return Topology(None, base or lab_dir()).bird_socket(*node_service(name))


def birdc(name, *command, base=None, check=True):
    """Output of `birdc` for a router (the socket is a file: no need to enter the namespace)."""
    return run(["birdc", "-s", ctl_path(name, base)] + list(command), check=check).stdout


def write_config(name, text, base=None):
    """Validate (`bird -p`) and install a config; True when it changed (the caller then reconfigures)."""
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


def configure(name, base=None):
    """Apply the installed config live (`birdc configure`); a router not running yet reads it when it starts."""
    if not os.path.exists(ctl_path(name, base)):
        return
    out = birdc(name, "configure", base=base)
    if "Reconfigured" not in out and "Reconfiguration in progress" not in out:
        raise LabError(f"birdc configure on {name}: {out.strip()}")


def fixed_configs():
    """Configs that do not depend on ARM state."""
    return {"er": birdconf.edge(), "onprem": birdconf.onprem()}
