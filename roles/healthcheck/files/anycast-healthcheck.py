# Copyright: anycast.nva contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Launcher of the health checker: runs the anycast_healthcheck package beside this file.

`python3 -I` (the unit, the command line, the role's validate:) puts neither the current
directory nor this file's directory on sys.path, so this launcher adds its own directory.
No bytecode is written: the daemon's user cannot write here anyway, and root running the
command line must not leave caches in the installed package.
"""

import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from anycast_healthcheck.cli import main  # noqa: E402  pylint: disable=wrong-import-position

sys.exit(main())
