"""Tiny HTTP backend for the lab: answers every GET with a fixed body (e.g. region and host name).

Run inside a namespace by the topology engine: `python -m anycast_lab.hosts.httpd --port 80 --body "westeurope be1"`.
"""

import argparse
import http.server
import os


def make_handler(body, status):
    """Handler class answering every path with the same status and body."""
    payload = body.encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        """GET and HEAD on any path."""

        def do_GET(self):  # pylint: disable=invalid-name  # name fixed by http.server
            self._answer(send_body=True)

        def do_HEAD(self):  # pylint: disable=invalid-name
            self._answer(send_body=False)

        def _answer(self, send_body):
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if send_body:
                self.wfile.write(payload)

        def log_message(self, format, *args):  # pylint: disable=redefined-builtin  # signature fixed by http.server
            print(f"{self.client_address[0]} {format % args}", flush=True)

    return Handler


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bind", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--body", default="ok\n")
    parser.add_argument("--status", type=int, default=200)
    parser.add_argument("--ready-file", help="created once the socket listens (the engine waits for it)")
    args = parser.parse_args(argv)
    server = http.server.ThreadingHTTPServer((args.bind, args.port), make_handler(args.body, args.status))
    if args.ready_file:
        with open(args.ready_file, "w", encoding="utf-8") as f:
            f.write(f"{os.getpid()}\n")
    print(f"listening on {args.bind}:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
