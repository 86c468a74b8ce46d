"""Test client of the nat scenario (runs in the client namespace, standard library only).

probe: one short connection per source port; prints "<port> <backend> <address the backend saw>"
       or "<port> FAILED".
hold:  keeps one connection per source port open and sends a line on each every --interval
       seconds; writes a JSON status to --status (per port: requests answered, failures, the
       backends that answered, the first error, the slowest answer in seconds) until --stop
       appears or --seconds pass.
The backend answers each line with "<backend> <address it saw> <line>".
"""
import argparse
import json
import os
import socket
import struct
import time


def connect(target, port, timeout):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.settimeout(timeout)
    sock.bind(("0.0.0.0", port))
    sock.connect(target)
    return sock, sock.makefile("rb")


def ask(sock, reader, line):
    sock.sendall(line.encode() + b"\n")
    answer = reader.readline().decode().split()
    if len(answer) < 3 or answer[2] != line:
        raise OSError(f"bad answer {answer!r} to {line!r}")
    return answer[0], answer[1]


def probe(args, target):
    for port in args.ports:
        try:
            sock, reader = connect(target, port, args.timeout)
            with sock:
                backend, seen = ask(sock, reader, "probe")
                # Close with a reset (no TIME_WAIT): the port can be used again at once.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                reader.close()
            print(port, backend, seen, flush=True)
        except OSError:
            print(port, "FAILED", flush=True)


def write_status(path, status):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(status, f)
    os.replace(tmp, path)


def hold(args, target):
    conns, status = {}, {"done": False, "ports": {}}
    for port in args.ports:
        entry = status["ports"][str(port)] = {"ok": 0, "failed": 0, "backends": [], "seen": [], "error": None, "slowest": 0.0}
        try:
            conns[port] = connect(target, port, args.timeout)
        except OSError as exc:
            entry["failed"], entry["error"] = 1, f"connect: {exc}"
    end, seq, last_write = time.monotonic() + args.seconds, 0, 0.0
    while time.monotonic() < end and not os.path.exists(args.stop):
        seq += 1
        for port, (sock, reader) in list(conns.items()):
            entry = status["ports"][str(port)]
            asked = time.monotonic()
            try:
                backend, seen = ask(sock, reader, str(seq))
            except OSError as exc:
                # A broken connection stays broken: count it and stop using it.
                entry["failed"] += 1
                entry["error"] = entry["error"] or f"request {seq}: {exc}"
                sock.close()
                del conns[port]
                continue
            entry["ok"] += 1
            entry["slowest"] = max(entry["slowest"], round(time.monotonic() - asked, 3))
            if backend not in entry["backends"]:
                entry["backends"].append(backend)
            if seen not in entry["seen"]:
                entry["seen"].append(seen)
        status["requests"] = seq
        if time.monotonic() - last_write > 0.5:
            write_status(args.status, status)
            last_write = time.monotonic()
        time.sleep(args.interval)
    for sock, reader in conns.values():
        reader.close()
        sock.close()
    status["done"] = True
    write_status(args.status, status)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["probe", "hold"])
    parser.add_argument("--target", default="10.250.0.10:81")
    parser.add_argument("--ports", type=int, nargs="+", required=True)
    parser.add_argument("--timeout", type=float, default=3.0)
    parser.add_argument("--interval", type=float, default=0.3)
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--status")
    parser.add_argument("--stop")
    args = parser.parse_args()
    host, port = args.target.rsplit(":", 1)
    (probe if args.mode == "probe" else hold)(args, (host, int(port)))


if __name__ == "__main__":
    main()
