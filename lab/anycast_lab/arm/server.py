"""HTTPS front end: Entra ID endpoints, ARM, the /_emulator/ admin API, faults and the request log."""
import datetime
import json
import re
import ssl
import sys
import threading
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from . import identity, metadata, seed
from .bodies import render
from .errors import ArmError, bad_request
from .response import Response

MAX_LOGGED = 50000
FAULT_KEYS = {"method", "path", "body", "status", "code", "message", "retry_after", "retry_after_ms", "times", "delay", "lro_final"}
DEFAULT_FAULT_CODES = {400: "BadRequest", 404: "NotFound", 409: "Conflict", 429: "SubscriptionRequestsThrottled", 500: "InternalServerError",
                       502: "BadGateway", 503: "ServiceUnavailable", 504: "GatewayTimeout"}
# Hosts MSAL may target for tenant discovery and tokens: '/{tenant}/v2.0/...' and '/{tenant}/oauth2/v2.0/token'.
OPENID_RE = re.compile(r"^/([^/]+)/v2\.0/\.well-known/openid-configuration$")
TOKEN_RE = re.compile(r"^/([^/]+)/oauth2/v2\.0/token$")
KEYS_RE = re.compile(r"^/([^/]+)/discovery/v2\.0/keys$")


def classify(method, path):
    """'write', 'routes' (a POST that only lists routes) or 'read' for an ARM request."""
    if method in ("GET", "HEAD"):
        return "read"
    if method == "POST" and re.search(r"/(learned|advertised)routes$", path.lower()):
        return "routes"
    return "write"


def request_kind(path):
    """'arm' (under /subscriptions/), 'metadata' (the cloud metadata endpoint) or 'identity' (Entra ID) for the request log."""
    lower = path.lower()
    if lower.startswith("/subscriptions/"):
        return "arm"
    if lower == "/metadata/endpoints":
        return "metadata"
    return "identity"


def validate_fault(fault, index):
    """Check one fault spec; errors name the field."""
    where = f"faults[{index}]"
    if not isinstance(fault, dict):
        raise bad_request("InvalidFault", f"{where} must be an object.")
    unknown = set(fault) - FAULT_KEYS
    if unknown:
        raise bad_request("InvalidFault", f"{where} has unknown field(s) {sorted(unknown)}; known: {sorted(FAULT_KEYS)}.")
    for key in ("path", "body"):
        try:
            re.compile(fault.get(key, ""))
        except (re.error, TypeError) as exc:
            raise bad_request("InvalidFault", f"{where}.{key} is not a valid regular expression: {exc}.") from exc
    status = fault.get("status")
    if status is not None and (not isinstance(status, int) or not 400 <= status <= 599):
        raise bad_request("InvalidFault", f"{where}.status must be an HTTP error status 400-599, got {status!r}.")
    if fault.get("lro_final") not in (None, "Failed"):
        raise bad_request("InvalidFault", f"{where}.lro_final must be \"Failed\", got {fault.get('lro_final')!r}.")
    for key in ("delay", "retry_after", "retry_after_ms"):
        if fault.get(key) is not None and (not isinstance(fault[key], (int, float)) or fault[key] < 0):
            raise bad_request("InvalidFault", f"{where}.{key} must be a number >= 0.")
    times = fault.get("times", 1)
    if not isinstance(times, int) or (times < 1 and times != -1):
        raise bad_request("InvalidFault", f"{where}.times must be an integer >= 1 (or -1 for every matching request).")
    if status is None and fault.get("delay") is None and fault.get("lro_final") is None:
        raise bad_request("InvalidFault", f"{where} needs at least one of status, delay, lro_final.")
    if status is not None and fault.get("lro_final"):
        raise bad_request("InvalidFault", f"{where}: status and lro_final exclude each other.")
    return dict(fault, times=times, fired=0, id=str(uuid.uuid4()))


class Emulator(ThreadingHTTPServer):
    """The HTTPS server plus the state shared by request threads (log, faults)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, service, port, cert, key, log_path=None):
        super().__init__(("127.0.0.1", port), Handler)
        self.service = service
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls.load_cert_chain(cert, key)
        self.port = self.server_address[1]
        self.base = f"https://127.0.0.1:{self.port}"
        service.base = self.base
        self.log_path = log_path
        self.lock = threading.Lock()
        self.requests = []
        self.faults = []

    def get_request(self):
        # The TLS handshake runs in the request thread (first read), so one slow client cannot stall accept().
        sock, addr = self.socket.accept()
        return self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ssl.SSLError, ConnectionError, TimeoutError)):
            return  # a client that went away or refused our CA: nothing to report
        super().handle_error(request, client_address)

    def record(self, entry):
        with self.lock:
            self.requests.append(entry)
            if len(self.requests) > MAX_LOGGED:
                del self.requests[: len(self.requests) - MAX_LOGGED]  # a long lab run keeps the newest; the --log file keeps all
            if self.log_path:
                with open(self.log_path, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(entry) + "\n")

    def take_fault(self, method, path, category, raw):
        with self.lock:
            for fault in self.faults:
                if fault["times"] != -1 and fault["fired"] >= fault["times"]:
                    continue
                if fault.get("method") and fault["method"].upper() != method:
                    continue
                if not re.search(fault.get("path", ""), path) or not re.search(fault.get("body", ""), raw.decode("utf-8", "replace")):
                    continue
                if fault.get("lro_final") and category not in ("write", "routes"):
                    continue  # only requests that start an operation can end Failed
                fault["fired"] += 1
                return fault
        return None


class Handler(BaseHTTPRequestHandler):
    """Dispatch: /_emulator/* admin, /subscriptions/* ARM, /metadata/endpoints, anything else Entra ID."""

    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes; without TCP_NODELAY, Nagle + delayed ACK add ~40 ms per answer.
    disable_nagle_algorithm = True
    server_version = "anycast-arm-emulator/1"
    server: Emulator

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        pass  # the JSON request log replaces the default stderr lines

    def do_GET(self):  # pylint: disable=invalid-name
        self._dispatch("GET")

    def do_HEAD(self):  # pylint: disable=invalid-name
        self._dispatch("HEAD")

    def do_PUT(self):  # pylint: disable=invalid-name
        self._dispatch("PUT")

    def do_PATCH(self):  # pylint: disable=invalid-name
        self._dispatch("PATCH")

    def do_POST(self):  # pylint: disable=invalid-name
        self._dispatch("POST")

    def do_DELETE(self):  # pylint: disable=invalid-name
        self._dispatch("DELETE")

    def _dispatch(self, method):
        started = time.time()
        url = urlsplit(self.path)
        path, query = unquote(url.path), parse_qs(url.query)
        raw = self._read_body()
        headers = {key.lower(): value for key, value in self.headers.items()}
        if path.startswith("/_emulator/"):
            self._answer(self._guard(lambda: self._admin(method, path[len("/_emulator/"):], raw)))
            return
        kind = request_kind(path)
        category = classify(method, path) if kind == "arm" else kind
        fault = self.server.take_fault(method, path, category, raw)
        response = self._guard(lambda: self._serve(kind, method, path, query, headers, raw, fault))
        # Logged before the answer leaves: a client that has its answer always finds its request in the log.
        self.server.record({"time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds"), "method": method,
                            "path": path, "query": url.query, "status": response.status, "client": self.client_address[0],
                            "kind": kind, "category": category, "fault": bool(fault), "ms": int((time.time() - started) * 1000)})
        self._answer(response, method == "HEAD")

    def _read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()  # the empty line after the last chunk (no trailers expected)
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _serve(self, kind, method, path, query, headers, raw, fault):  # pylint: disable=too-many-arguments
        if fault is not None:
            if fault.get("delay"):
                time.sleep(fault["delay"])
            if fault.get("status"):
                extra = {"Retry-After": str(int(fault["retry_after"]))} if fault.get("retry_after") is not None else {}
                if fault.get("retry_after_ms") is not None:
                    extra["x-ms-retry-after-ms"] = str(int(fault["retry_after_ms"]))
                raise ArmError(fault["status"], fault.get("code") or DEFAULT_FAULT_CODES.get(fault["status"], "InjectedFault"),
                               fault.get("message") or f"Fault injected by the emulator ({fault['status']}).", extra)
        if kind == "arm":
            return self.server.service.handle(method, path, query, headers, raw, fault if fault and fault.get("lro_final") else None)
        if kind == "metadata":
            if method != "GET":
                raise ArmError(405, "MethodNotAllowed", f"{method} is not allowed on {path}.")
            return Response(*metadata.endpoints(self.server.base, (query.get("api-version") or [None])[0]))
        return self._identity(method, path, query, headers, raw)

    def _identity(self, method, path, query, headers, raw):  # pylint: disable=too-many-arguments
        base, store = self.server.base, self.server.service.store
        with store.lock:
            state = store.data
            match = OPENID_RE.match(path)
            if match and method == "GET":
                return Response(*identity.openid_configuration(base, state, match.group(1)))
            if path == "/common/discovery/instance" and method == "GET":
                return Response(*identity.instance_discovery(base, query))
            match = KEYS_RE.match(path)
            if match and method == "GET":
                return Response(200, {"keys": []})
            match = TOKEN_RE.match(path)
            if match and method == "POST":
                form = parse_qs(raw.decode("utf-8", "replace"))
                return Response(*identity.issue_token(base, state, match.group(1), form, headers.get("authorization")))
        return Response(404, {"error": "not_found", "error_description": f"No endpoint {method} {path} on this emulator."})

    # ------------------------------------------------------------ admin API
    def _admin(self, method, path, raw):  # pylint: disable=too-many-return-statements,too-many-branches
        server, service = self.server, self.server.service
        body = json.loads(raw) if raw else None
        if path == "requests":
            if method == "DELETE":
                with server.lock:
                    server.requests.clear()
                return Response(204)
            with server.lock:
                return Response(200, list(server.requests))
        if path == "faults":
            if method == "POST":
                items = body if isinstance(body, list) else [body]
                checked = [validate_fault(item, index) for index, item in enumerate(items)]
                with server.lock:
                    server.faults.extend(checked)
                return Response(201, checked)
            if method == "DELETE":
                with server.lock:
                    server.faults.clear()
                return Response(204)
            with server.lock:
                return Response(200, list(server.faults))
        if path == "seed" and method == "POST":
            return Response(200, seed.apply(service, body))
        if path == "state" and method == "GET":
            return Response(200, self._state_view())
        if path == "reset" and method == "POST":
            service.cancel_timers()
            service.store.reset()
            service.settings.restore()
            with server.lock:
                server.requests.clear()
                server.faults.clear()
            return Response(204)
        if path == "settings":
            if method == "PUT":
                service.settings.update(body or {})
            return Response(200, service.settings.as_dict())
        if path == "health":
            return Response(200, {"status": "ok", "endpoint": server.base})
        if path.startswith("routes/") and method in ("PUT", "GET"):
            parts = path.split("/")
            if len(parts) != 3:
                raise bad_request("InvalidPath", "Use /_emulator/routes/{hubName}/{connectionName}.")
            if method == "GET":
                return Response(200, service.store.data["routes"].get(f"{parts[1]}/{parts[2]}".lower(), {}))
            return Response(200, service.set_routes(parts[1], parts[2], body))
        if path.startswith("routing-lag/") and method == "PUT":
            parts = path.split("/")
            if len(parts) != 4:
                raise bad_request("InvalidPath", "Use PUT /_emulator/routing-lag/{subscriptionId}/{resourceGroup}/{hubName} {\"seconds\": N}.")
            return Response(200, service.set_routing_lag(parts[1], parts[2], parts[3], (body or {}).get("seconds")))
        if path == "hooks/wait" and method == "POST":
            service.wait_hooks()
            return Response(204)
        raise ArmError(404, "NotFound", f"No admin endpoint {method} /_emulator/{path}.")

    def _state_view(self):
        """Resources as clients see them (rendered), plus subscriptions and operations."""
        service = self.server.service
        with service.store.lock:
            data = service.store.data
            return {"subscriptions": data["subscriptions"], "service_principals": data["service_principals"],
                    "resources": {body["id"]: render(service, body) for body in data["resources"].values()},
                    "operations": data["operations"], "routes": data["routes"]}

    # ------------------------------------------------------------ plumbing
    @staticmethod
    def _guard(func):
        try:
            return func()
        except ArmError as exc:
            return Response(exc.status, exc.body(), exc.headers)
        except json.JSONDecodeError as exc:
            return Response(400, {"error": {"code": "InvalidRequestContent", "message": f"The request body is not valid JSON: {exc}."}})
        except Exception as exc:  # pylint: disable=broad-exception-caught
            # The error boundary of a request: a bug answers 500 (as ARM would) instead of killing the connection.
            traceback.print_exc()
            return Response(500, {"error": {"code": "InternalServerError", "message": f"{type(exc).__name__}: {exc}"}})

    def _answer(self, response, head=False):
        payload = b"" if response.body is None else json.dumps(response.body).encode()
        self.send_response(response.status)
        if response.body is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        request_id = str(uuid.uuid4())
        self.send_header("x-ms-request-id", request_id)
        self.send_header("x-ms-correlation-request-id", request_id)
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.end_headers()
        if payload and not head:
            self.wfile.write(payload)
