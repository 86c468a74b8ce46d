"""Lab hosts and networks: systemd-nspawn hosts in network namespaces, built from a topology spec.

Python API (tests): `from anycast_lab.hosts import Topology, LabError`; CLI: `python -m anycast_lab.hosts --help`.
"""

from .image import ensure_image
from .topology import Topology, teardown
from .util import LabError

__all__ = ["Topology", "LabError", "ensure_image", "teardown"]
