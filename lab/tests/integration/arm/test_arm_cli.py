"""The command line: serve prints the ready line and writes the ready file; SIGTERM stops it cleanly."""
import json
import os
import signal
import subprocess
import sys

from anycast_lab.arm.client import LAB_DIR


def test_serve_ready_line_ready_file_and_sigterm(tmp_path):
    env = dict(os.environ, PYTHONPATH=LAB_DIR)
    cmd = [sys.executable, "-m", "anycast_lab.arm", "serve", "--port", "0", "--state", str(tmp_path / "s.json"), "--tls-dir", str(tmp_path / "tls")]
    with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True) as proc:
        line = proc.stdout.readline().strip()
        assert line.startswith("ready https://127.0.0.1:")
        assert (tmp_path / "tls" / "ready").read_text().strip() == line.split()[1]
        assert (tmp_path / "tls" / "ca.pem").exists() and oct((tmp_path / "tls" / "ca.key").stat().st_mode & 0o777) == "0o600"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    assert not (tmp_path / "tls" / "ready").exists()
    assert json.loads((tmp_path / "s.json").read_text())["resources"] == {}


def test_help_lists_the_hooks():
    done = subprocess.run([sys.executable, "-m", "anycast_lab.arm", "serve", "--help"], env=dict(os.environ, PYTHONPATH=LAB_DIR),
                          capture_output=True, text=True, timeout=30, check=True)
    for option in ("--state", "--tls-dir", "--on-change-cmd", "--routes-cmd", "--peer-state-cmd", "--op-seconds", "--routing-delay"):
        assert option in done.stdout
