"""Small helpers shared by the lab's host machinery: errors, logging, commands, background processes."""

import fcntl
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager

RUN_DIR = "/run/anycast-nva"


class LabError(Exception):
    """A problem the user can fix (bad spec, missing tool, conflicting state); printed without a traceback."""


def log(msg):
    """Progress on stderr, so stdout stays clean for paths and JSON."""
    print(f"[anycast-lab] {msg}", file=sys.stderr, flush=True)


def run(argv, check=True, input_text=None, timeout=None):
    """Run a command; on failure raise LabError carrying the command and its stderr."""
    try:
        proc = subprocess.run(argv, input=input_text, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"command timed out after {timeout} s: {' '.join(argv)}") from exc
    if check and proc.returncode != 0:
        raise LabError(f"command failed (exit {proc.returncode}): {' '.join(argv)}\n{proc.stderr.strip()}")
    return proc


@contextmanager
def machine_lock():
    """Serialise changes to the root namespace (shared bridge, address checks) between concurrent lab runs."""
    os.makedirs(RUN_DIR, exist_ok=True)
    with open(os.path.join(RUN_DIR, "lock"), "w", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _proc_stat(pid):
    """(state, start time) of a process from /proc/PID/stat, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], fields[19]


def _start_time(pid):
    """Kernel start time of a process, to tell it from a later process that reused its pid."""
    stat = _proc_stat(pid)
    return stat[1] if stat else None


def start_background(argv, pidfile, logfile, env=None):
    """Start argv detached (own session, output to logfile) and record pid + start time in pidfile."""
    os.makedirs(os.path.dirname(pidfile), exist_ok=True)
    os.makedirs(os.path.dirname(logfile), exist_ok=True)
    with open(logfile, "ab") as out:
        # pylint: disable-next=consider-using-with  # the process outlives this call on purpose
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    with open(pidfile, "w", encoding="utf-8") as f:
        f.write(f"{proc.pid} {_start_time(proc.pid)}\n")
    return proc.pid


def running_pid(pidfile):
    """The pid recorded in pidfile if that very process still runs (not a zombie), else None."""
    try:
        with open(pidfile, encoding="utf-8") as f:
            pid_text, started = f.read().split()
    except (OSError, ValueError):
        return None
    pid = int(pid_text)
    stat = _proc_stat(pid)
    if stat is None or stat[1] != started:
        return None
    if stat[0] == "Z":
        _reap(pid)
        return None
    return pid


def _reap(pid):
    """Collect our own dead child so it does not linger as a zombie (no-op for others' processes)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def stop_background(pidfile, sig=signal.SIGTERM, timeout=10.0):
    """Signal the process group recorded in pidfile, wait for it, SIGKILL it after timeout; remove the pidfile."""
    pid = running_pid(pidfile)
    if pid is not None:
        _signal_group(pid, sig)
        if not wait_gone(pid, timeout):
            _signal_group(pid, signal.SIGKILL)
            wait_gone(pid, 5.0)
    if os.path.exists(pidfile):
        os.unlink(pidfile)
    return pid is not None


def _signal_group(pid, sig):
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)


def wait_gone(pid, timeout):
    """Wait until pid has exited (reaping it if it is our child); True when gone in time. A zombie counts as gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        stat = _proc_stat(pid)
        if stat is None or stat[0] == "Z":
            return True
        time.sleep(0.1)
    return False


def tail(path, lines=15):
    """The last lines of a log file, for error messages."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return "(no output)"
