# Copyright: anycast.nva contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Logging and systemd notification."""

import json
import os
import socket
import time


def log(event, **fields):
    """One JSON object per line on stdout (journald keeps it)."""
    record = {'ts': round(time.time(), 3), 'event': event}
    record.update(fields)
    print(json.dumps(record, sort_keys=False), flush=True)


def sd_notify(message):
    """Tell systemd about readiness / watchdog (no-op outside systemd)."""
    addr = os.environ.get('NOTIFY_SOCKET')
    if not addr:
        return
    if addr.startswith('@'):
        addr = '\0' + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(message.encode('ascii'), addr)
        except OSError:
            pass
