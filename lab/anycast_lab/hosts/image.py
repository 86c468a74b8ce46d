"""Root image for the lab hosts: a Debian 12 tree built once with debootstrap and shared read-only.

Every lab host boots an overlayfs on top of this tree, so the tree must already hold every package
the roles install (the hosts have no route to a package mirror) and must boot cleanly under
systemd-nspawn with the network configured from outside.
"""

import fcntl
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import time

from .util import LabError, log

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
DEFAULT_CACHE = "/var/cache/anycast-nva"

# Everything the roles and the tests use on a host. The hosts cannot reach a mirror: add here, never at runtime.
PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "libpam-systemd",
    "openssh-server", "sudo", "python3", "python3-apt",
    "bird2", "nftables", "conntrackd", "conntrack",
    "iproute2", "iputils-ping", "procps", "curl", "socat", "iperf3", "tcpdump", "ca-certificates",
    "netbase",  # /etc/protocols and /etc/services, as on any Debian VM (conntrackd needs them)
)

# Bumped when prepare() changes, so a tree prepared the old way is not reused.
PREPARE_VERSION = "3"

SSHD_CONFIG = """\
# anycast.nva lab host: root logs in with the lab key only.
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
"""

# Units that would hang (no tty), need a network we do not give, or fight our outside configuration.
MASKED_UNITS = (
    "console-getty.service", "getty@.service", "serial-getty@.service", "getty.target",
    "systemd-networkd.service", "systemd-networkd.socket", "systemd-networkd-wait-online.service",
    "systemd-resolved.service", "systemd-timesyncd.service",
    "apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer", "fstrim.timer",
    "systemd-remount-fs.service", "sys-kernel-config.mount", "sys-kernel-debug.mount",
)

# Daemons stay off until a role configures and enables them, as on a golden VM image.
DISABLED_UNITS = ("bird.service", "conntrackd.service")


def image_id():
    """Short hash naming the tree: changes when the package list or the preparation changes."""
    text = "\n".join((SUITE, MIRROR, PREPARE_VERSION) + tuple(sorted(PACKAGES)))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def image_path(cache_dir=DEFAULT_CACHE):
    """Where the tree for the current package list lives (it may not exist yet)."""
    return os.path.join(cache_dir, "rootfs-" + image_id())


def ensure_image(cache_dir=DEFAULT_CACHE, rebuild=False):
    """Return the path of a complete root image, building it first when it is missing."""
    final = image_path(cache_dir)
    if _complete(final) and not rebuild:
        return final
    for tool in ("debootstrap", "systemd-nspawn"):
        if shutil.which(tool) is None:
            raise LabError(f"{tool} is not installed: run `make deps` (.ci/install-system-deps)")
    os.makedirs(cache_dir, exist_ok=True)
    # One builder at a time; whoever waited finds the image the other one built.
    with open(os.path.join(cache_dir, ".build.lock"), "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _complete(final) and not rebuild:
            return final
        if rebuild and _in_use(final):
            raise LabError(f"--rebuild: {final} is the lower layer of running hosts; take their topologies down first")
        _build(final)
    return final


def _complete(path):
    return os.path.isfile(os.path.join(path, ".anycast-lab-complete"))


def _in_use(path):
    with open("/proc/self/mounts", encoding="utf-8") as f:
        return any(f"lowerdir={path}," in line or f"lowerdir={path} " in line for line in f)


def _build(final):
    """debootstrap + prepare into a temporary dir, then rename: an interrupted build is never mistaken for a good one."""
    # Trees of interrupted builds (we hold the build lock, so none is in progress) only take space.
    for stale in glob.glob(f"{glob.escape(final)}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = f"{final}.tmp-{os.getpid()}"
    started = time.monotonic()
    log(f"building root image {final} (debootstrap {SUITE}, {len(PACKAGES)} packages)")
    cmd = ["debootstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES), SUITE, tmp, MIRROR]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-20:])
        shutil.rmtree(tmp, ignore_errors=True)
        raise LabError(f"debootstrap failed (exit {proc.returncode}):\n{tail}")
    prepare(tmp)
    if os.path.exists(final):
        shutil.rmtree(final)
    os.rename(tmp, final)
    log(f"root image ready in {time.monotonic() - started:.1f} s: {final} ({_size_mb(final)} MB)")


def prepare(root):
    """Make a fresh debootstrap tree boot under nspawn with SSH by key and nothing that waits for a tty or network."""
    def path(*parts):
        return os.path.join(root, *parts)

    with open(path("etc/ssh/sshd_config.d/anycast-lab.conf"), "w", encoding="utf-8") as f:
        f.write(SSHD_CONFIG)
    for unit in MASKED_UNITS:
        link = path("etc/systemd/system", unit)
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink("/dev/null", link)
    for unit in DISABLED_UNITS:
        _run_in(root, ["systemctl", "disable", unit])
    # Empty machine-id: each host writes its own into its overlay.
    with open(path("etc/machine-id"), "w", encoding="utf-8"):
        pass
    if os.path.exists(path("var/lib/dbus/machine-id")):
        os.unlink(path("var/lib/dbus/machine-id"))
    with open(path("etc/fstab"), "w", encoding="utf-8") as f:
        f.write("# lab host: the overlay is mounted from outside\n")
    os.makedirs(path("root/.ssh"), mode=0o700, exist_ok=True)
    # Offline package installs (ansible.builtin.apt without update_cache) read these lists; keep them, drop the debs.
    shutil.rmtree(path("var/cache/apt/archives"), ignore_errors=True)
    os.makedirs(path("var/cache/apt/archives/partial"), exist_ok=True)
    with open(path(".anycast-lab-complete"), "w", encoding="utf-8") as f:
        f.write(image_id() + "\n")


def _run_in(root, argv):
    """Run a command inside the tree (chroot) for offline configuration steps like `systemctl disable`."""
    proc = subprocess.run(["chroot", root] + argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    if proc.returncode != 0:
        raise LabError(f"preparing the root image: {' '.join(argv)} failed: {proc.stdout.strip()}")


def _size_mb(root):
    proc = subprocess.run(["du", "-sm", root], stdout=subprocess.PIPE, text=True, check=False)
    return proc.stdout.split()[0] if proc.returncode == 0 else "?"


def prune(cache_dir=DEFAULT_CACHE):
    """Delete root images of older package lists that no running host uses; returns the removed paths."""
    removed = []
    os.makedirs(cache_dir, exist_ok=True)
    with open(os.path.join(cache_dir, ".build.lock"), "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for path in sorted(glob.glob(os.path.join(glob.escape(cache_dir), "rootfs-*"))):
            if path != image_path(cache_dir) and not _in_use(path):
                shutil.rmtree(path)
                removed.append(path)
    return removed


def main(args):
    """CLI: `python -m anycast_lab.hosts [--cache DIR] image [--rebuild]`."""
    started = time.monotonic()
    if args.prune:
        for path in prune(args.cache):
            log(f"removed unused root image {path}")
    path = ensure_image(args.cache, rebuild=args.rebuild)
    print(path)
    print(f"image ready after {time.monotonic() - started:.1f} s", file=sys.stderr)
