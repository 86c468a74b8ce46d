"""python -m anycast_lab.arm serve|seed|proxy  (the venv's Python: `make venv` installs the lab package)."""
import argparse
import json
import os
import signal
import ssl
import sys
import urllib.error
import urllib.request

from .proxy import DEFAULT_HOSTS, ConnectProxy
from .server import Emulator
from .service import Service
from .settings import Settings
from .store import Store
from .tls import make_certificates


def _exit_on_signal(*_):
    raise SystemExit(0)


def _serve(args):
    store = Store(args.state)
    settings = Settings(op_seconds=args.op_seconds, routing_delay=args.routing_delay, retry_after=args.retry_after,
                        on_change_cmd=args.on_change_cmd, routes_cmd=args.routes_cmd, peer_state_cmd=args.peer_state_cmd)
    cert, key = make_certificates(args.tls_dir, args.server_name)
    service = Service(store, settings)
    server = Emulator(service, args.port, cert, key, args.log)
    store.save()
    # SIGTERM ends serve_forever cleanly (the state is already on disk after every change).
    signal.signal(signal.SIGTERM, _exit_on_signal)
    ready = os.path.join(args.tls_dir, "ready")
    # Everything from the ready file on is inside try: a SIGTERM right after the ready line still removes it.
    try:
        with open(ready + ".tmp", "w", encoding="utf-8") as handle:
            handle.write(server.base + "\n")
        os.replace(ready + ".tmp", ready)
        print(f"ready {server.base}", flush=True)
        server.serve_forever(poll_interval=0.2)
    finally:
        service.cancel_timers()
        for path in (ready, ready + ".tmp"):
            if os.path.exists(path):
                os.unlink(path)
    return 0


def _proxy(args):
    signal.signal(signal.SIGTERM, _exit_on_signal)
    server = ConnectProxy(args.emulator, hosts=args.host or DEFAULT_HOSTS, port=args.port)
    print(f"ready http://127.0.0.1:{server.port}", flush=True)
    server.serve_forever(poll_interval=0.2)
    return 0


def _seed(args):
    with open(args.file, encoding="utf-8") as handle:
        topology = json.load(handle)
    context = ssl.create_default_context(cafile=args.ca_bundle) if args.ca_bundle else ssl.create_default_context()
    request = urllib.request.Request(args.endpoint.rstrip("/") + "/_emulator/seed", data=json.dumps(topology).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, context=context, timeout=30) as answer:
            print(answer.read().decode())
    except urllib.error.HTTPError as exc:
        print(f"seed failed: HTTP {exc.code}: {exc.read().decode()}", file=sys.stderr)
        return 1
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m anycast_lab.arm", description="ARM + Entra ID emulator for the anycast.nva lab.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve HTTPS on 127.0.0.1")
    serve.add_argument("--port", type=int, default=8443, help="TCP port (0: pick a free one; the ready line tells which)")
    serve.add_argument("--state", required=True, help="JSON state file (created if missing, rewritten after every change)")
    serve.add_argument("--log", help="request log, JSON lines")
    serve.add_argument("--tls-dir", required=True, help="where ca.pem, the server certificate and the 'ready' file go")
    serve.add_argument("--op-seconds", type=float, default=0.2, help="duration of every long-running operation (default 0.2)")
    serve.add_argument("--routing-delay", type=float, default=0.5,
                       help="seconds a hub's routingState stays Provisioning after the hub or its ipConfiguration is provisioned (default 0.5)")
    serve.add_argument("--retry-after", type=int, help="send Azure's 'Retry-After: N' on LRO answers instead of the x-ms-retry-after-ms hint")
    serve.add_argument("--on-change-cmd", help="shell command run after each completed write (env ARM_STATE, ARM_CHANGED, ARM_METHOD)")
    serve.add_argument("--routes-cmd", help="shell command giving learned/advertised routes: args hub connection peer-ip learned|advertised")
    serve.add_argument("--peer-state-cmd", help="shell command printing a bgpConnection's connectionState: args hub connection peer-ip")
    serve.add_argument("--server-name", action="append", default=[],
                       help="one more DNS name for the server certificate (repeatable), e.g. management.azure.com for clients that "
                            "reach the emulator through `python -m anycast_lab.arm proxy`")
    proxy = commands.add_parser("proxy", help="HTTPS (CONNECT) proxy that sends Azure's public hostnames to a running emulator")
    proxy.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: pick a free one; the ready line tells which)")
    proxy.add_argument("--emulator", required=True, help="the emulator's https://127.0.0.1:PORT")
    proxy.add_argument("--host", action="append", default=[], help="hostname sent to the emulator (repeatable; default: ARM and Entra ID's)")
    seed = commands.add_parser("seed", help="load a topology JSON file into a running emulator")
    seed.add_argument("--endpoint", required=True, help="https://127.0.0.1:PORT")
    seed.add_argument("--ca-bundle", help="the emulator's ca.pem (default: REQUESTS_CA_BUNDLE / system store)")
    seed.add_argument("file")
    args = parser.parse_args(argv)
    if args.command == "seed" and not args.ca_bundle:
        args.ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE")
    if args.command == "proxy":
        return _proxy(args)
    return _serve(args) if args.command == "serve" else _seed(args)


if __name__ == "__main__":
    sys.exit(main())
