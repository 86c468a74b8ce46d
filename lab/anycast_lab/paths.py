"""Where things are, for every part of the lab, the tests and the benchmarks: one place.

LAB_DIR    <repo>/lab, the directory that holds the anycast_lab package (PYTHONPATH for a Python without the package installed)
REPO       the repository root (the collection, its playbooks, inventories and ansible.cfg)
lab_dir()  the running lab's state directory (topology, emulator, BIRD files): $ANYCAST_LAB_DIR or <repo>/.cache/lab
LAB_LOCK   the lock file (flock) the e2e tests and the benchmarks hold while they use the lab, one lab per machine
"""
import os

LAB_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(LAB_DIR)
DEFAULT_LAB_DIR = os.path.join(REPO, ".cache", "lab")
LAB_LOCK = os.path.join(os.environ.get("TMPDIR", "/tmp"), "anycast-nva-lab.lock")


def lab_dir():
    """The lab's state directory (topology, emulator, BIRD files): $ANYCAST_LAB_DIR or <repo>/.cache/lab."""
    return os.path.abspath(os.environ.get("ANYCAST_LAB_DIR", DEFAULT_LAB_DIR))
