# Copyright: anycast.nva contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""anycast-healthcheck: a fail-closed health checker that switches BIRD announcements.

Per anycast prefix it runs HTTP(S), TCP and command checks, keeps a rise/fall state
machine, writes BIRD's state file (docs/architecture.md: the function
`anycast_state(prefix)`, 0 withdrawn, 1 announced, 1+n prepended n times) and asks BIRD
to reconfigure over its control socket (a filter change: sessions stay up).

Python standard library only (it runs on the NVA) and one thread with one asyncio loop.
Plain TCP and HTTP probes are small state machines on an epoll of their own (no task,
future or timer per probe); rounds due at the same instant share one timer, and regular
rounds stay on a grid so that 50 prefixes probe together. HTTPS and command checks run
as coroutines of the same loop.

The package, by concern: config (defaults, validation), state (rise/fall, announce value),
announce (BIRD's state file and control socket), httpproto (HTTP request, framing, verdict),
engine (the epoll probe engine), probes (checks as coroutines), scheduler (timers, runners,
rounds), metrics, daemon, cli (the entry point; the role installs a launcher that calls it),
util (log lines, systemd notification).
"""

import sys

# This runs first, whatever module of the package is imported, before any of them imports
# asyncio. asyncio imports ssl eagerly (about 4 MB of RSS). HTTPS checks do TLS themselves over a
# MemoryBIO, so asyncio's copy is not needed: hide ssl while asyncio loads, then let
# `_ssl_context` import it only when an HTTPS check exists.
sys.modules.setdefault('ssl', None)
import asyncio  # noqa: E402,F401  pylint: disable=wrong-import-position,wrong-import-order,unused-import
if sys.modules.get('ssl') is None:
    del sys.modules['ssl']
