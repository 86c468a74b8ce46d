"""Tiny HTTP backend for the lab: answers every GET with a fixed body (e.g. region and host name).

Run inside a namespace by the topology engine: `python -m anycast_lab.hosts.httpd --port 80 --body "westeurope be1"`.

It keeps connections alive like an application server at nginx's defaults: HTTP/1.1 answers, the connection kept
for the next request unless the client asks `Connection: close` or speaks HTTP/1.0, and closed after
`--idle-timeout` seconds (75) without a request. Stopping it (SIGTERM from `service stop`) ends the process and
with it every kept connection: the kernel closes them, so a health checker holding one sees it at once.
"""

import argparse
import http.server
import io
import os
import sys

IDLE_TIMEOUT = 75.0  # nginx's keepalive_timeout


def make_handler(body, status, idle_timeout=IDLE_TIMEOUT):
    """Handler class answering every path with the same status and body."""
    payload = body.encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        """GET and HEAD on any path."""

        protocol_version = "HTTP/1.1"  # keep-alive: every answer is framed by its Content-Length
        timeout = idle_timeout  # a connection waiting longer for its next request is closed
        wbufsize = io.DEFAULT_BUFFER_SIZE  # head and body in one segment (sent when the request is handled)

        def do_GET(self):  # pylint: disable=invalid-name  # name fixed by http.server
            self._answer(send_body=True)

        def do_HEAD(self):  # pylint: disable=invalid-name
            self._answer(send_body=False)

        def _answer(self, send_body):
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            if self.close_connection or self.request_version != "HTTP/1.1":
                # Asked to close, or HTTP/1.0 (no keep-alive for it, like nginx without a keep-alive request).
                self.send_header("Connection", "close")  # also sets close_connection
            self.end_headers()
            if send_body:
                self.wfile.write(payload)

        def log_message(self, format, *args):  # pylint: disable=redefined-builtin  # signature fixed by http.server
            print(f"{self.client_address[0]} {format % args}", flush=True)

    return Handler


class Server(http.server.ThreadingHTTPServer):
    """One thread a connection; the threads are daemons, so they end with the process (nothing serves after a stop)."""

    daemon_threads = True
    block_on_close = False

    def handle_error(self, request, client_address):
        """One line for a client that reset its connection (a checker closing a kept one); a traceback otherwise."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            print(f"{client_address[0]} connection reset by the client", flush=True)
        else:
            super().handle_error(request, client_address)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bind", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--body", default="ok\n")
    parser.add_argument("--status", type=int, default=200)
    parser.add_argument("--idle-timeout", type=float, default=IDLE_TIMEOUT,
                        help="seconds a kept connection may wait for its next request (default %(default)s, nginx's)")
    parser.add_argument("--ready-file", help="created once the socket listens (the engine waits for it)")
    args = parser.parse_args(argv)
    server = Server((args.bind, args.port), make_handler(args.body, args.status, args.idle_timeout))
    if args.ready_file:
        with open(args.ready_file, "w", encoding="utf-8") as f:
            f.write(f"{os.getpid()}\n")
    print(f"listening on {args.bind}:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
