"""One lab host: a systemd-nspawn container on an overlay of the root image, inside its own network namespace.

The namespace (with its interfaces, addresses and routes) is made before boot by the topology engine;
this module mounts the overlay, gives the host its identity, boots it, waits for SSH and stops it.
"""

import hashlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time

from . import net
from .util import LabError, log, run, running_pid, start_background, stop_background, tail, wait_gone

SSH_OPTIONS = ("-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
               "-o", "BatchMode=yes", "-o", "ConnectTimeout=5")


def ensure_key(state_dir):
    """The topology's ed25519 key pair (made once per state dir); returns the private key path."""
    key = os.path.join(state_dir, "ssh", "id_ed25519")
    if not os.path.exists(key):
        os.makedirs(os.path.dirname(key), mode=0o700, exist_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "anycast-lab", "-f", key])
    return key


def ssh_argv(key, address, argv):
    """ssh command running argv (quoted for the remote shell) as root on a host."""
    return ["ssh", "-i", key, *SSH_OPTIONS, f"root@{address}", "--", shlex.join(argv)]


def overlay_mounts(prefix):
    """Mount points of the overlays of one topology, found by the source name we give them (PREFIX.NAME)."""
    found = []
    with open("/proc/self/mounts", encoding="utf-8") as f:
        for line in f:
            source, target, fstype = line.split()[:3]
            if fstype == "overlay" and source.startswith(prefix + "."):
                found.append(target.replace("\\040", " "))
    return found


def nspawn_pids(prefix):
    """systemd-nspawn processes of one topology, found by their --machine=PREFIX.NAME (when pid files are lost)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if args and os.path.basename(args[0]) == b"systemd-nspawn" and any(a.startswith(f"--machine={prefix}.".encode()) for a in args):
            found.append(int(entry))
    return found


def cgroup_roots():
    """Where the lab's hosts get their cgroups: anycast-lab/ in cgroup2 and, on hybrid hosts, in cgroup v1 name=systemd."""
    roots = []
    with open("/proc/self/mounts", encoding="utf-8") as f:
        for line in f:
            target, fstype, options = line.split()[1:4]
            if fstype == "cgroup2" or (fstype == "cgroup" and "name=systemd" in options.split(",")):
                roots.append(os.path.join(target, "anycast-lab"))
    return roots


def remove_cgroups(name, whole_prefix=False):
    """Remove the (empty, once stopped) cgroups of host `name`, or of every host named `name...`; deepest first."""
    for root in cgroup_roots():
        entries = os.listdir(root) if os.path.isdir(root) else []
        tops = [os.path.join(root, e) for e in entries if e == name or (whole_prefix and e.startswith(name))]
        for top in tops:
            for path in sorted((entry[0] for entry in os.walk(top)), key=len, reverse=True):
                try:
                    os.rmdir(path)
                except OSError:
                    pass


def halt(pids, timeout=20.0):
    """SIGTERM nspawn leaders (their containers halt cleanly, in parallel), SIGKILL those still there after timeout."""
    for pid in pids:
        _kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for pid in pids:
        if not wait_gone(pid, max(0.0, deadline - time.monotonic())):
            log(f"systemd-nspawn {pid}: no clean shutdown in {timeout:.0f} s, killing it")
            _kill(pid, signal.SIGKILL)


def _kill(pid, sig):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def unmount(target):
    """Unmount, falling back to a lazy unmount when something still holds the tree."""
    if run(["umount", target], check=False).returncode != 0:
        run(["umount", "--lazy", target], check=False)


class Host:
    """A booted or bootable lab host. `directory` holds upper/, work/, root/ (the mounted overlay) and the pid file."""

    def __init__(self, prefix, name, mgmt_ip, state_dir, image):
        self.prefix = prefix
        self.name = name
        self.mgmt_ip = mgmt_ip
        self.state_dir = state_dir
        self.image = image
        self.netns = net.ns_name(prefix, name)
        self.directory = os.path.join(state_dir, "hosts", name)
        self.root = os.path.join(self.directory, "root")
        self.pidfile = os.path.join(self.directory, "nspawn.pid")
        self.console_log = os.path.join(state_dir, "logs", f"{name}.console.log")
        self.key = os.path.join(state_dir, "ssh", "id_ed25519")

    # -- lifecycle -------------------------------------------------------------------------------------------------

    def mounted(self):
        return self.root in overlay_mounts(self.prefix)

    def mount(self):
        """Mount the overlay (idempotent) and write the host's identity into its upper layer."""
        for sub in ("upper", "work", "root"):
            os.makedirs(os.path.join(self.directory, sub), exist_ok=True)
        if not self.mounted():
            options = f"lowerdir={self.image},upperdir={self.directory}/upper,workdir={self.directory}/work"
            run(["mount", "-t", "overlay", self.netns, "-o", options, self.root])
        self._write_identity()

    def _write_identity(self):
        def write(rel, text, mode=0o644):
            path = os.path.join(self.root, rel)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            os.chmod(path, mode)

        write("etc/hostname", self.name + "\n")
        write("etc/hosts", f"127.0.0.1\tlocalhost\n127.0.1.1\t{self.name}\n::1\tlocalhost ip6-localhost ip6-loopback\n")
        # Stable per topology and host, so journald and D-Bus see the same machine across reboots.
        write("etc/machine-id", hashlib.md5(self.netns.encode()).hexdigest() + "\n", 0o444)
        with open(self.key + ".pub", encoding="utf-8") as f:
            write("root/.ssh/authorized_keys", f.read(), 0o600)

    def running(self):
        return running_pid(self.pidfile) is not None

    def start(self):
        """Start booting the container in the background (no-op when it runs); returns the monotonic start time."""
        started = time.monotonic()
        if self.running():
            return started
        if not net.netns_exists(self.netns):
            raise LabError(f"host {self.name}: network namespace {self.netns} is missing (run up, not boot)")
        if os.path.exists(self.console_log):
            os.unlink(self.console_log)
        argv = ["systemd-nspawn", "--boot", "--quiet", "--register=no", "--keep-unit",
                f"--directory={self.root}", f"--machine={self.netns}",
                f"--network-namespace-path={os.path.join(net.NETNS_DIR, self.netns)}",
                # Without these BIRD, nft and conntrack fail with "Operation not permitted".
                "--capability=CAP_NET_ADMIN,CAP_NET_RAW",
                "--resolv-conf=off", "--timezone=off", "--link-journal=no", "--console=read-only"]
        # "network": /proc/sys/net writable (per-namespace sysctls like ip_forward), the rest of /proc/sys read-only.
        env = dict(os.environ, SYSTEMD_NSPAWN_API_VFS_WRITABLE="network", ANYCAST_LAB_CGROUPS=" ".join(self._make_cgroups()))
        # nspawn --keep-unit puts the container in payload/ under its own cgroup. Started from one shared cgroup,
        # every host's systemd would manage the same payload/system.slice/X.service directories and remove them
        # under each other (a unit then fails with 219/CGROUP). So nspawn starts in a cgroup of its own.
        wrapper = ["sh", "-c", 'for d in $ANYCAST_LAB_CGROUPS; do echo $$ > "$d/cgroup.procs" || exit 1; done; exec "$@"', "nspawn"]
        start_background(wrapper + argv, self.pidfile, self.console_log, env=env)
        return started

    def cgroups(self):
        """This host's own cgroup in each hierarchy systemd uses."""
        return [os.path.join(root, self.netns) for root in cgroup_roots()]

    def _make_cgroups(self):
        dirs = self.cgroups()
        for path in dirs:
            os.makedirs(path, exist_ok=True)
        return dirs

    def boot(self, timeout=60.0):
        """Boot and wait until SSH lets us in; returns seconds from start to SSH."""
        started = self.start()
        self.wait_ssh(started + timeout)
        return time.monotonic() - started

    def wait_ssh(self, deadline):
        """Poll for the SSH banner, then prove key login works; fail early (with the console tail) if nspawn died."""
        while True:
            if not self.running():
                raise LabError(f"host {self.name}: systemd-nspawn exited during boot; console log {self.console_log}:\n{tail(self.console_log)}")
            if _ssh_banner(self.mgmt_ip) and self._ssh_login_works():
                return
            if time.monotonic() > deadline:
                raise LabError(f"host {self.name}: no SSH on {self.mgmt_ip}:22 in time; console log {self.console_log}:\n{tail(self.console_log)}")
            time.sleep(0.2)

    def _ssh_login_works(self):
        try:
            return self.ssh(["true"], timeout=15).returncode == 0
        except subprocess.TimeoutExpired:
            return False  # sshd is still starting its units; try again until the deadline

    def stop(self, timeout=20.0):
        """Orderly shutdown (SIGTERM to nspawn halts the container's systemd), then kill whatever is left."""
        pid = running_pid(self.pidfile)
        if pid is not None:
            halt([pid], timeout)
        stop_background(self.pidfile, sig=signal.SIGKILL, timeout=5.0)
        net.kill_netns_processes(self.netns)
        remove_cgroups(self.netns)

    def remove(self):
        """Stop, unmount and delete the host's overlay (its upper layer is gone: the next boot is a fresh host)."""
        self.stop()
        if self.mounted():
            unmount(self.root)
        shutil.rmtree(self.directory, ignore_errors=True)

    def ssh(self, argv, timeout=None):
        """Run argv on the host over SSH; returns the CompletedProcess."""
        return subprocess.run(ssh_argv(self.key, self.mgmt_ip, argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, check=False, timeout=timeout)


def _ssh_banner(address):
    try:
        with socket.create_connection((address, 22), timeout=1.0) as sock:
            sock.settimeout(1.0)
            return sock.recv(4).startswith(b"SSH-")
    except OSError:
        return False
