"""Molecule healthcheck: an unprivileged local process attacks the checker's metrics port.

flood: hold --idle idle connections and --slow clients that send a request header one byte a
second, for --seconds, opening a new connection for each one the checker closes; print what it
saw as JSON: the connections it opened and those the checker closed.
squat: take the port (listen on it), print "listening", and hold it for --seconds.
"""

import argparse
import json
import resource
import socket
import time


def connect(port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.connect_ex(('127.0.0.1', port))
    return sock


def closed(sock):
    """The checker closed this connection (or reset it)."""
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b''
    except BlockingIOError:
        return False
    except OSError:
        return True


def squat(port, seconds):
    """Listen on the port before the checker does."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # The flood's connections, closed by the checker, leave the port in TIME_WAIT for a minute.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(('127.0.0.1', port))
    sock.listen()
    print('listening', flush=True)
    time.sleep(seconds)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('attack', choices=['flood', 'squat'])
    parser.add_argument('--port', type=int, default=9469)
    parser.add_argument('--idle', type=int, default=2000)
    parser.add_argument('--slow', type=int, default=20)
    parser.add_argument('--seconds', type=float, default=300)
    args = parser.parse_args()
    if args.attack == 'squat':
        squat(args.port, args.seconds)
        return
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    conns = [connect(args.port) for _slot in range(args.idle + args.slow)]  # the first args.slow are the slow ones
    opened, by_checker = len(conns), 0
    header = b'GET /metrics HTTP/1.1\r\nX-Slow: ' + b'a' * 100000
    sent = 0
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        for i in range(args.slow):  # one more byte of a header that never ends
            try:
                conns[i].send(header[sent:sent + 1])
            except OSError:
                pass
        sent += 1
        time.sleep(1.0)
        for i, sock in enumerate(conns):
            if closed(sock):
                sock.close()
                by_checker += 1
                conns[i] = connect(args.port)
                opened += 1
    print(json.dumps({'idle': args.idle, 'slow': args.slow, 'seconds': args.seconds, 'opened': opened,
                      'closed_by_checker': by_checker}))


if __name__ == '__main__':
    main()
