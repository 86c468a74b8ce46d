# Copyright: anycast.nva contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""`python3 -m anycast_healthcheck` where the package is on sys.path (the role installs a launcher instead)."""

import sys

from .cli import main

sys.exit(main())
