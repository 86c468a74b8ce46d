"""Make the lab's fabric follow ARM: the emulator's --on-change-cmd runs this after every completed write.

It rewrites the Route Server speakers' configs (one session per registered bgpConnection, the
branch-to-branch gate toward ExpressRoute), the NIC forwarding rules and the UDR tables, and applies
only what changed: `birdc configure`, one nftables transaction, one `ip -batch` per region.
"""
import fcntl
import os

from ..hosts import net
from ..hosts.util import run
from ..paths import lab_dir
from . import birdconf, fabric, plan, routers
from .armview import ArmView


def _apply_file(path, text, argv, force, before=None):
    """Write `text` to `path` and run `argv` on it when it differs from what was last applied; True if applied.

    `before`: a command (run unchecked) that clears what the previous version set up.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            if handle.read() == text and not force:
                return False
    except FileNotFoundError:
        pass
    with open(path + ".new", "w", encoding="utf-8") as handle:
        handle.write(text)
    if before:
        run(before, check=False)
    run(argv + [path + ".new"])
    # Recorded only once applied: a failed apply is retried on the next change.
    os.replace(path + ".new", path)
    return True


def apply(state_path, base=None, force=False, fabric_too=True):
    """Bring speakers and fabric in line with the ARM state file; returns what was changed (for logs and tests).

    fabric_too=False: only write the speakers' configs (before the namespaces exist).
    """
    base = base or lab_dir()
    changed = []
    os.makedirs(os.path.join(base, "fabric"), exist_ok=True)
    # Writes from parallel requests run this concurrently: one at a time, each from a fresh state read.
    with open(os.path.join(base, "sync.lock"), "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        view = ArmView.load(state_path)
        # The size the lab in `base` was brought up with: its NICs are the fabric's ports.
        for region in plan.regions(plan.lab_nvas(base)):
            hub = view.hub(region.resource_group, region.route_server)
            peers = view.bgp_peers(hub)
            b2b = bool(hub and (hub.get("properties") or {}).get("allowBranchToBranchTraffic"))
            for instance in (0, 1):
                name = routers.speaker_name(region, instance)
                if routers.write_config(name, birdconf.speaker(region, instance, peers, b2b), base) or force:
                    routers.configure(name, base)
                    changed.append(name)
            # Before `up` made the namespaces (the seed's own change) there is no fabric to program yet.
            if not fabric_too or not net.netns_exists(region.fabric_ns):
                continue
            if _apply_file(os.path.join(base, "fabric", f"{region.short}.nft"), fabric.nft_rules(region, view),
                           ["ip", "netns", "exec", region.fabric_ns, "nft", "-f"], force):
                changed.append(f"{region.short}-forwarding")
            cleanup = os.path.join(base, "fabric", f"{region.short}.udr-cleanup")
            with open(cleanup, "w", encoding="utf-8") as handle:
                handle.write(fabric.udr_cleanup(region))
            if _apply_file(os.path.join(base, "fabric", f"{region.short}.udr"), fabric.udr_batch(region, view),
                           ["ip", "-n", region.fabric_ns, "-batch"], force, before=["ip", "-n", region.fabric_ns, "-force", "-batch", cleanup]):
                changed.append(f"{region.short}-udr")
    return changed
