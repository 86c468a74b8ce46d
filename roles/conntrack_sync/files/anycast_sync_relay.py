# Copyright: anycast.nva contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""anycast-sync-relay: send conntrackd's sync messages to every peer; a flow's end as its deletion.

Fan-out: conntrackd's UDP channel has exactly one destination, and running one conntrackd
per peer loops: an entry one instance injects is a kernel event the other instances send
on, and back. So a single conntrackd in NOTRACK mode (built for multicast, it accepts
messages from several senders) sends to this relay on loopback, and the relay sends every
datagram to each peer's conntrackd. Azure has no multicast, hence the relay.

Deletions are sent only when a flow ends. A deletion names a flow by its addresses and
ports only, so it cannot tell one use of a client's source port from the next, and the
kernel reports its own deletions late: it reaps expired entries lazily, e.g. when conntrackd
injects the peer's new flow on that port, and that deletion would remove the peer's live
connection on the same port. So the relay drops conntrack deletions. Instead, the update
that says a TCP flow ended (TIME_WAIT or CLOSE) goes to the peers as a deletion, at the
moment it ends, while the client still holds the port. A copy in TIME_WAIT would do harm:
the kernel lets a new SYN through such a copy with the old flow's NAT (an injected copy
lacks the flag that reopens it), so the answer goes to the NVA that owned the old flow,
which resets it. And a peer that restarts gets the others' whole tables again (startup
resync) with fresh timeouts, so its TIME_WAIT copies would outlive the flows by minutes.

Sender: the relay takes a datagram only from a socket of conntrackd's user (root): every UDP socket
bound to the sender's port must belong to that user (/proc/net/udp). The sync firewall already drops
other users' datagrams to the relay; this is the second check.
Python standard library only; no privileges (port above 1023, loopback).
"""

import argparse
import ipaddress
import json
import os
import socket
import struct
import sys
import time

# conntrackd's message header: version (high nibble) and type (low nibble), flags, length, sequence
# (network byte order); several messages may share a datagram, each padded to 4 bytes.
HEADER = struct.Struct('!BBHI')
CT_NEW, CT_UPDATE, CT_DELETE = 0, 1, 2  # NET_T_STATE_CT_* (control messages have type 10)
# Then attributes: length (header included) and type, network byte order, each padded to 4 bytes.
ATTRIBUTE = struct.Struct('!HH')
NTA_TCP_STATE = 4  # one byte: enum tcp_conntrack
TCP_ENDED = (7, 8)  # TCP_CONNTRACK_TIME_WAIT, TCP_CONNTRACK_CLOSE
PROC_NET_UDP = '/proc/net/udp'


def endpoint(text):
    """'10.10.3.5:3780' -> ('10.10.3.5', 3780), checked."""
    host, _sep, port = text.rpartition(':')
    try:
        ipaddress.IPv4Address(host)
        port = int(port)
    except ValueError as exc:
        raise argparse.ArgumentTypeError('%r is not IPv4:PORT' % text) from exc
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError('%r: port must be 1-65535' % text)
    return host, port


def parse_args(argv=None):
    """Command line."""
    parser = argparse.ArgumentParser(prog='anycast-sync-relay', description=__doc__.split('\n', 1)[0])
    parser.add_argument('--listen', type=endpoint, required=True, help='loopback IP:PORT conntrackd sends to')
    parser.add_argument('--source', required=True, type=ipaddress.IPv4Address, help='local sync address (the peers accept only it)')
    parser.add_argument('--peer', type=endpoint, action='append', required=True, help='IP:PORT of a peer conntrackd (repeat)')
    parser.add_argument('--sender-uid', type=int, default=0, help="conntrackd's user: the only one the relay takes datagrams from")
    args = parser.parse_args(argv)
    if not ipaddress.IPv4Address(args.listen[0]).is_loopback:
        parser.error('--listen must be a loopback address: only the local conntrackd may feed the relay')
    return args


def log(event, **fields):
    """One JSON line on stdout (journald keeps it)."""
    fields.update(ts=round(time.time(), 3), event=event)
    print(json.dumps(fields), flush=True)


def sd_notify(message):
    """Readiness for systemd (Type=notify); no-op outside systemd."""
    addr = os.environ.get('NOTIFY_SOCKET')
    if addr:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(message.encode('ascii'), '\0' + addr[1:] if addr.startswith('@') else addr)


def port_owners(port, table=PROC_NET_UDP):
    """The users of the local UDP sockets bound to `port` (several may share a port)."""
    owners = set()
    with open(table, encoding='ascii') as lines:
        next(lines)  # the header
        for line in lines:
            fields = line.split()
            if int(fields[1].rpartition(':')[2], 16) == port:
                owners.add(int(fields[7]))
    return owners


class SenderCheck:
    """Takes a datagram only when every socket bound to its source port belongs to `uid`.

    A sender that passed is not looked up again for a second (conntrackd keeps its socket);
    a refused one is looked up every time.
    """

    def __init__(self, uid, table=PROC_NET_UDP, clock=time.monotonic):
        self.uid, self.table, self.clock = uid, table, clock
        self.passed, self.passed_at = None, None
        self.refused = 0

    def __call__(self, sender):
        now = self.clock()
        if sender == self.passed and now - self.passed_at < 1:
            return True
        if port_owners(sender[1], self.table) == {self.uid}:
            self.passed, self.passed_at = sender, now
            return True
        self.refused += 1
        if self.refused in (1, 100, 10000):
            log('sender_refused', sender='%s:%d' % sender, refused=self.refused)
        return False


def tcp_state(message):
    """The TCP state a conntrack message carries (None when it has none)."""
    offset = HEADER.size
    while offset + ATTRIBUTE.size <= len(message):
        length, kind = ATTRIBUTE.unpack_from(message, offset)
        if length < ATTRIBUTE.size:
            return None
        if kind == NTA_TCP_STATE and length > ATTRIBUTE.size and offset + length <= len(message):
            return message[offset + ATTRIBUTE.size]
        offset += (length + 3) & ~3
    return None


def for_peers(datagram):
    """The datagram as the peers get it: deletions dropped, a TCP flow's end made its deletion.

    A malformed datagram is passed on whole (conntrackd checks and counts it).
    """
    kept, offset = [], 0
    while offset < len(datagram):
        if len(datagram) - offset < HEADER.size:
            return datagram
        version_type, _flags, length, _seq = HEADER.unpack_from(datagram, offset)
        if length < HEADER.size or offset + length > len(datagram):
            return datagram
        message = datagram[offset:offset + length]
        kind = version_type & 0x0F
        if kind in (CT_NEW, CT_UPDATE) and tcp_state(message) in TCP_ENDED:
            # Same message, type changed: conntrackd deletes by the tuple it carries.
            kept.append(bytes([version_type & 0xF0 | CT_DELETE]) + message[1:])
        elif kind != CT_DELETE:
            kept.append(message)
        offset += length
    return b''.join(kept)


def relay(listen_sock, send_sock, peers, count=None, sender_ok=None):
    """Forward datagrams until `count` were read (forever when None); return per-peer errors.

    `sender_ok(address)` says whether a datagram's sender may feed the relay (None: any).
    """
    errors = {peer: 0 for peer in peers}
    relayed = 0
    while count is None or relayed < count:
        data, sender = listen_sock.recvfrom(65535)
        relayed += 1
        if sender_ok is not None and not sender_ok(sender):
            continue
        data = for_peers(data)
        if not data:
            continue
        for peer in peers:
            try:
                send_sock.sendto(data, peer)
            except OSError as exc:
                # A peer that is down must not stop the others; say so once per burst.
                errors[peer] += 1
                if errors[peer] in (1, 100, 10000):
                    log('send_failed', peer='%s:%d' % peer, error=str(exc), failures=errors[peer])
    return errors


def main(argv=None):
    """Entry point."""
    args = parse_args(argv)
    listen_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listen_sock.bind(args.listen)
    send_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    send_sock.bind((str(args.source), 0))
    log('started', listen='%s:%d' % args.listen, source=str(args.source), peers=['%s:%d' % p for p in args.peer],
        sender_uid=args.sender_uid)
    sd_notify('READY=1')
    relay(listen_sock, send_sock, args.peer, sender_ok=SenderCheck(args.sender_uid))
    return 0


if __name__ == '__main__':
    sys.exit(main())
