"""Command line: image, up, down, status, exec, service. `python -m anycast_lab.hosts --help`."""

import argparse
import json
import os
import sys

from . import image
from .spec import PREFIX_RE
from .topology import Topology, teardown
from .util import LabError


def _topology(args):
    """The topology from SPEC when given, else the one `up` saved in the state dir."""
    if getattr(args, "spec", None):
        return Topology.from_file(args.spec, args.state, image_cache=args.cache)
    return Topology.from_state(args.state, image_cache=args.cache)


def cmd_up(args):
    _topology(args).up(boot_timeout=args.boot_timeout)


def cmd_down(args):
    if args.prefix:
        if not PREFIX_RE.match(args.prefix):
            raise LabError(f"--prefix {args.prefix!r} is not a lab prefix (pattern {PREFIX_RE.pattern})")
        teardown(args.prefix, args.state)
        return
    try:
        topo = _topology(args)
    except LabError:
        if not args.state:
            raise
        raise LabError(f"no spec and no topology.json in {args.state}: use `down --prefix PREFIX` to clean up by name") from None
    topo.down()


def cmd_status(args):
    status = _topology(args).status()
    if args.json:
        print(json.dumps(status, indent=1))
        return
    for node in status["nodes"]:
        state = "" if "running" not in node else ("running" if node["running"] else "stopped")
        services = " ".join(f"{k}:{'up' if v else 'down'}" for k, v in node["services"].items())
        print(f"{node['name']:<12} {node['kind']:<6} {node['netns']:<28} {node['mgmt_ip'] or '-':<15} {state:<8} {services}")


def cmd_exec(args):
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not argv:
        raise LabError("exec: give a command after --")
    proc = _topology(args).exec(args.node, argv)
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    sys.exit(proc.returncode)


def cmd_reboot(args):
    _topology(args).reboot(args.node, timeout=args.boot_timeout)


def cmd_service(args):
    topo = _topology(args)
    if args.action == "start":
        topo.service_start(args.node, args.name)
    else:
        topo.service_stop(args.node, args.name)


def main(argv=None):
    """Parse arguments and run one command; user errors print one line and exit 2."""
    parser = argparse.ArgumentParser(prog="python -m anycast_lab.hosts", description="Lab hosts (systemd-nspawn) and networks (netns).")
    parser.add_argument("--cache", default=image.DEFAULT_CACHE, help="root image cache directory (default %(default)s)")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_state(p, spec=None):
        if spec == "required":
            p.add_argument("spec", help="topology spec (YAML or JSON)")
        elif spec == "optional":
            p.add_argument("spec", nargs="?", help="topology spec (default: the one saved in the state dir)")
        p.add_argument("--state", default=os.environ.get("ANYCAST_LAB_STATE"), required="ANYCAST_LAB_STATE" not in os.environ,
                       help="state dir (default $ANYCAST_LAB_STATE)")
        return p

    p = sub.add_parser("image", help="build (or reuse) the Debian 12 root image and print its path")
    p.add_argument("--rebuild", action="store_true", help="build again even when a complete image exists")
    p.add_argument("--prune", action="store_true", help="first delete images of older package lists that no running host uses")
    p.set_defaults(func=image.main)
    p = with_state(sub.add_parser("up", help="create the topology and boot its hosts"), "required")
    p.add_argument("--boot-timeout", type=float, default=60.0, help="seconds each host may take to answer SSH")
    p.set_defaults(func=cmd_up)
    p = sub.add_parser("down", help="remove the topology (also the leftovers of a crashed run)")
    p.add_argument("spec", nargs="?", help="topology spec (default: the one saved in the state dir)")
    p.add_argument("--state", default=os.environ.get("ANYCAST_LAB_STATE"), help="state dir")
    p.add_argument("--prefix", help="remove everything named PREFIX.* without a spec")
    p.set_defaults(func=cmd_down)
    p = with_state(sub.add_parser("status", help="show nodes, hosts and services"), "optional")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)
    p = with_state(sub.add_parser("exec", help="run a command in a node (hosts: over SSH)"))
    p.add_argument("node")
    p.add_argument("argv", nargs=argparse.REMAINDER, help="-- command and arguments")
    p.set_defaults(func=cmd_exec)
    p = with_state(sub.add_parser("reboot", help="reboot a host: same disk, fresh network state, wait for SSH"))
    p.add_argument("node")
    p.add_argument("--boot-timeout", type=float, default=60.0, help="seconds the host may take to answer SSH")
    p.set_defaults(func=cmd_reboot)
    p = with_state(sub.add_parser("service", help="start or stop a service of a plain-namespace node"))
    p.add_argument("action", choices=("start", "stop"))
    p.add_argument("node")
    p.add_argument("name")
    p.set_defaults(func=cmd_service)

    args = parser.parse_args(argv)
    if args.command == "down" and not (args.state or args.prefix):
        parser.error("down needs --state DIR or --prefix PREFIX")
    try:
        args.func(args)
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
