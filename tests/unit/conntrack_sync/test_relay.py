"""The conntrackd relay: every datagram reaches every peer, without the kernel's deletions, with a TCP flow's end as
its deletion; bad arguments are refused."""

import importlib.util
import os
import pathlib
import socket
import struct
import threading

import pytest

RELAY = pathlib.Path(__file__).resolve().parents[3] / 'roles' / 'conntrack_sync' / 'files' / 'anycast_sync_relay.py'


@pytest.fixture(scope='module', name='relay')
def relay_module():
    """The relay script as a module."""
    spec = importlib.util.spec_from_file_location('anycast_sync_relay', RELAY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def udp(bind=('127.0.0.1', 0)):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(5)
    sock.bind(bind)
    return sock


def test_every_datagram_reaches_every_peer(relay):
    listen, sender = udp(), udp()
    peers = [udp(), udp(), udp()]
    worker = threading.Thread(target=relay.relay, args=(listen, sender, [p.getsockname() for p in peers], 3))
    worker.start()
    feeder = udp()
    messages = [b'\x01' * 10, b'conntrackd message', bytes(range(256)) * 5]
    for message in messages:
        feeder.sendto(message, listen.getsockname())
    for peer in peers:
        received = [peer.recvfrom(65535) for _message in messages]
        assert [data for data, _src in received] == messages
        # The copies come from the relay's sending socket (the peers' firewall allows that address only).
        assert {src for _data, src in received} == {sender.getsockname()}
    worker.join(5)
    assert not worker.is_alive()


def test_a_peer_that_fails_does_not_stop_the_others(relay):
    listen, sender, good = udp(), udp(), udp()
    # Sending to a broadcast address without SO_BROADCAST fails (EACCES) for that peer only.
    peers = [('255.255.255.255', 3780), good.getsockname()]
    worker = threading.Thread(target=relay.relay, args=(listen, sender, peers, 1))
    worker.start()
    udp().sendto(b'state', listen.getsockname())
    assert good.recvfrom(100)[0] == b'state'
    worker.join(5)


@pytest.mark.parametrize('argv,message', [
    (['--listen', '10.10.3.4:3780', '--source', '10.10.3.4', '--peer', '10.10.3.5:3780'], 'must be a loopback address'),
    (['--listen', '127.0.0.1:3780', '--source', '10.10.3.4', '--peer', 'nva2:3780'], "'nva2:3780' is not IPv4:PORT"),
    (['--listen', '127.0.0.1:3780', '--source', '10.10.3.4', '--peer', '10.10.3.5:70000'], 'port must be 1-65535'),
    (['--listen', '127.0.0.1:3780', '--source', 'nva1', '--peer', '10.10.3.5:3780'], 'argument --source'),
])
def test_bad_arguments_are_refused(relay, capsys, argv, message):
    with pytest.raises(SystemExit):
        relay.parse_args(argv)
    assert message in capsys.readouterr().err


def message(kind, seq, payload=b'', flags=0):
    """One conntrackd sync message: header (version 1, type, flags, length, sequence) and 4-byte padded payload."""
    payload += b'\0' * (-len(payload) % 4)
    return struct.pack('!BBHI', 0x10 | kind, flags, 8 + len(payload), seq) + payload


NEW, UPDATE, DELETE, CONTROL = 0, 1, 2, 10
ESTABLISHED, FIN_WAIT, TIME_WAIT, CLOSE = 3, 4, 7, 8


def attribute(kind, data):
    """One conntrackd message attribute: length (header included) and type, then the data padded to 4 bytes."""
    return struct.pack('!HH', 4 + len(data), kind) + data + b'\0' * (-len(data) % 4)


def tcp_flow(port, state):
    """The attributes conntrackd sends for a NATed TCP flow (layout as captured from conntrackd 1.4 in the lab)."""
    return (attribute(0, bytes([172, 16, 1, 10, 10, 250, 0, 10])) + attribute(5, struct.pack('!I', 0x1be))
            + attribute(2, bytes([6])) + attribute(3, struct.pack('!HH', port, 80)) + attribute(4, bytes([state]))
            + attribute(6, struct.pack('!I', 120)) + attribute(12, bytes([10, 10, 2, 5])) + attribute(13, bytes([10, 11, 1, 4])))


def test_deletions_are_dropped_and_the_rest_kept_in_order(relay):
    new, update = message(NEW, 1, tcp_flow(40000, ESTABLISHED)), message(UPDATE, 3, tcp_flow(40002, FIN_WAIT))
    deletion, alive = message(DELETE, 2, tcp_flow(40004, TIME_WAIT)), message(CONTROL, 4, flags=0x08)
    udp_flow = message(UPDATE, 5, attribute(0, bytes(8)) + attribute(2, bytes([17])) + attribute(3, bytes(4)))
    assert relay.for_peers(new + deletion + update + alive + udp_flow) == new + update + alive + udp_flow
    assert relay.for_peers(deletion) == b''
    assert relay.for_peers(new) == new


@pytest.mark.parametrize('kind', [NEW, UPDATE])
@pytest.mark.parametrize('state', [TIME_WAIT, CLOSE])
def test_a_tcp_flow_that_ended_reaches_the_peers_as_its_deletion(relay, kind, state):
    ended = message(kind, 7, tcp_flow(40000, state))
    expected = message(DELETE, 7, tcp_flow(40000, state))  # the same message, only its type changed
    live = message(UPDATE, 8, tcp_flow(40002, ESTABLISHED))
    assert relay.for_peers(live + ended) == live + expected
    assert relay.tcp_state(ended) == state and relay.tcp_state(live) == ESTABLISHED


@pytest.mark.parametrize('payload', [b'', attribute(4, b''), struct.pack('!HH', 2, 4) + b'\x07\0\0\0', struct.pack('!HH', 40, 4)])
def test_a_message_without_a_readable_tcp_state_is_kept_as_it_is(relay, payload):
    update = message(UPDATE, 1, payload)
    assert relay.tcp_state(update) is None
    assert relay.for_peers(update) == update


@pytest.mark.parametrize('datagram', [b'\x10\x00', message(NEW, 1, b'abcd')[:-2], struct.pack('!BBHI', 0x12, 0, 4, 1)])
def test_a_malformed_datagram_is_passed_on_whole(relay, datagram):
    assert relay.for_peers(datagram) == datagram


def test_peers_never_receive_the_kernels_deletions(relay):
    listen, sender, peer = udp(), udp(), udp()
    worker = threading.Thread(target=relay.relay, args=(listen, sender, [peer.getsockname()], 3))
    worker.start()
    feeder = udp()
    first, second = message(NEW, 1, b'flow 1'), message(UPDATE, 3, b'flow 1 closed')
    for datagram in (first + message(DELETE, 2, b'flow 0'), message(DELETE, 3, b'flow 2'), second):
        feeder.sendto(datagram, listen.getsockname())
    assert peer.recvfrom(65535)[0] == first
    assert peer.recvfrom(65535)[0] == second  # the datagram holding only a deletion was not sent at all
    worker.join(5)
    assert not worker.is_alive()


def test_the_owner_of_a_real_socket_is_read_from_proc(relay):
    sock = udp()
    assert relay.port_owners(sock.getsockname()[1]) == {os.getuid()}


UDP_TABLE = '''\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  1: 0100007F:0EC4 00000000:0000 07 00000000:00000000 00:00000000 00000000   998        0 1 2 0000 0
  2: 00000000:9C40 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 2 2 0000 0
  3: 0100007F:9C41 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 3 2 0000 0
  4: 0403030A:9C41 00000000:0000 07 00000000:00000000 00:00000000 00000000 65534        0 4 2 0000 0
'''


@pytest.fixture(name='table')
def udp_table(tmp_path):
    path = tmp_path / 'udp'
    path.write_text(UDP_TABLE, encoding='ascii')
    return str(path)


def test_only_a_port_that_root_alone_holds_passes(relay, table):
    check = relay.SenderCheck(0, table)
    assert check(('127.0.0.1', 0x9C40))                # conntrackd's socket
    assert not check(('127.0.0.1', 0x9C41))            # root and another user share the port
    assert not check(('127.0.0.1', 0x0EC4))            # another user's socket
    assert not check(('127.0.0.1', 40000 + 999))       # no socket (gone, or IPv6): refused
    assert check.refused == 3


def test_a_sender_that_passed_is_looked_up_again_after_a_second(relay, table, tmp_path):
    now = [100.0]
    check = relay.SenderCheck(0, table, clock=lambda: now[0])
    assert check(('127.0.0.1', 0x9C40))
    pathlib.Path(table).write_text(UDP_TABLE.replace('   0        0 2 2', '1000        0 2 2'), encoding='ascii')
    now[0] += 0.5
    assert check(('127.0.0.1', 0x9C40))
    now[0] += 0.6
    assert not check(('127.0.0.1', 0x9C40))


def test_a_refused_sender_reaches_no_peer(relay):
    listen, sender, peer = udp(), udp(), udp()
    stranger, conntrackd = udp(), udp()
    allowed = {conntrackd.getsockname()}
    worker = threading.Thread(target=relay.relay, args=(listen, sender, [peer.getsockname()], 2),
                              kwargs={'sender_ok': lambda address: address in allowed})
    worker.start()
    stranger.sendto(message(NEW, 0, b'planted'), listen.getsockname())
    conntrackd.sendto(message(NEW, 0, b'real'), listen.getsockname())
    assert peer.recvfrom(65535)[0] == message(NEW, 0, b'real')
    worker.join(5)
    assert not worker.is_alive()
    peer.settimeout(0.2)
    with pytest.raises(socket.timeout):
        peer.recvfrom(65535)
