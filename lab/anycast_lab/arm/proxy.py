"""An HTTPS (CONNECT) proxy that sends Azure's public hostnames to the emulator.

For clients whose endpoints cannot be changed (a module that always talks to management.azure.com and
login.microsoftonline.com): run them with HTTPS_PROXY=http://127.0.0.1:PORT, REQUESTS_CA_BUNDLE=<emulator ca.pem>
and start the emulator with `--server-name` for each of those hostnames. `requests` (azure-core, MSAL) then
opens a tunnel through this proxy and speaks TLS end to end with the emulator, which presents a certificate
for the name asked. It is DNS for the lab, not a man in the middle: bytes are relayed, never read.
Any other host is refused (403), so nothing leaves the machine by mistake.

    .venv/bin/python -m anycast_lab.arm proxy --emulator https://127.0.0.1:8443
"""
import select
import socket
import socketserver
import threading
from urllib.parse import urlsplit

DEFAULT_HOSTS = ("management.azure.com", "login.microsoftonline.com")
MAX_HEADER = 16384


class ConnectProxy(socketserver.ThreadingTCPServer):
    """CONNECT host:443 for a known host (or the emulator's own host:port) -> a byte tunnel to the emulator."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, emulator, hosts=DEFAULT_HOSTS, port=0):
        target = urlsplit(emulator)
        self.target = (target.hostname, target.port or 443)
        self.allowed = {f"{host.lower()}:443" for host in hosts} | {f"{self.target[0]}:{self.target[1]}"}
        self.lock = threading.Lock()
        self.tunnels = []  # "host:port" of every tunnel opened, in order
        super().__init__(("127.0.0.1", port), _Tunnel)
        self.port = self.server_address[1]

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        """Serve in a daemon thread (in-process use); returns self."""
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2}, name="arm-proxy", daemon=True).start()
        return self

    def stop(self):
        self.shutdown()
        self.server_close()


class _Tunnel(socketserver.BaseRequestHandler):
    server: ConnectProxy

    def handle(self):
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.request.recv(4096)
            if not chunk or len(head) > MAX_HEADER:
                return
            head += chunk
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split()
        if len(parts) != 3 or parts[0] != "CONNECT":
            self._refuse(405, "Method Not Allowed", "only CONNECT (HTTPS) is proxied")
            return
        authority = parts[1].lower()
        if authority not in self.server.allowed:
            self._refuse(403, "Forbidden", f"{authority} is not served by the lab's ARM emulator")
            return
        try:
            upstream = socket.create_connection(self.server.target, timeout=10)
        except OSError as exc:
            self._refuse(502, "Bad Gateway", f"the emulator at {self.server.target} is not reachable: {exc}")
            return
        with self.server.lock:
            self.server.tunnels.append(authority)
        with upstream:
            self.request.sendall(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            # Bytes after the header (a client that does not wait for our answer) belong to the tunnel.
            rest = head.split(b"\r\n\r\n", 1)[1]
            if rest:
                upstream.sendall(rest)
            self._relay(self.request, upstream)

    @staticmethod
    def _relay(client, upstream):
        upstream.settimeout(None)
        peers = {client: upstream, upstream: client}
        while True:
            readable = select.select(list(peers), [], [], 300)[0]
            if not readable:
                return  # idle for 5 minutes: a client that forgot its connection
            for sock in readable:
                try:
                    data = sock.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                peers[sock].sendall(data)

    def _refuse(self, status, reason, message):
        body = (message + "\n").encode()
        self.request.sendall(f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
                             f"Connection: close\r\n\r\n".encode() + body)
