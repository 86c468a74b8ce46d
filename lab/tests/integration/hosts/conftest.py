"""Fixtures for the lab engine tests: a small topology (one host, one plain-namespace peer) on the Molecule bridge.

They need root, systemd-nspawn and the root image (built on first use, about 75 s).
The management addresses come from the tests' range of anm-mgmt (198.18.1.90-99, lab/anycast_lab/hosts/README.md).
"""
import os
import shutil
import tempfile

import pytest

from anycast_lab.hosts import Topology


def _needs():
    if os.geteuid() != 0:
        return "needs root"
    for tool in ("systemd-nspawn", "debootstrap", "bird", "ip"):
        if shutil.which(tool) is None:
            return f"needs {tool} (make deps)"
    return None


@pytest.fixture(autouse=True)
def _lab_requirements():
    reason = _needs()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def state_dir():
    """A short state dir (BIRD control sockets must fit in 107 characters); removed with whatever is left."""
    path = tempfile.mkdtemp(prefix="anm-pytest-")
    yield path
    leftover = os.path.join(path, "topology.json")
    if os.path.exists(leftover):
        Topology.from_state(path).down()
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def bird_config(state_dir):  # pylint: disable=redefined-outer-name
    """A minimal BIRD config for the peer (router id and a device protocol)."""
    path = os.path.join(state_dir, "rs.conf")
    with open(path, "w", encoding="utf-8") as f:
        f.write("router id 10.10.2.10;\nprotocol device {}\n")
    return path
