"""CLI of the lab's network side: the emulator's hooks and a look at the routers.

  python -m anycast_lab.regions sync [--state FILE]            (--on-change-cmd; FILE defaults to $ARM_STATE)
  python -m anycast_lab.regions routes HUB CONN PEER_IP learned|advertised   (--routes-cmd; prints JSON)
  python -m anycast_lab.regions peer-state HUB CONN PEER_IP      (--peer-state-cmd; prints Connected|Connecting)
  python -m anycast_lab.regions render DIR [--nvas N]          (write the topology spec, the ARM seed and the fixed BIRD configs)
  python -m anycast_lab.regions birdc ROUTER ARGS...           (e.g. birdc onprem show route all)
  python -m anycast_lab.regions convergence-delay [SECONDS]    (show or set how late on-premises hears of a change)
"""
import argparse
import json
import os
import sys

from ..hosts.util import LabError
from ..paths import lab_dir
from . import birdconf, convergence, labspec, plan, routers, routes, sync


def render(directory, nvas=None):
    """What `up` generates, for reading: the spec, the seed and the BIRD configs (speakers as before any peer registers)."""
    labspec.write(directory, nvas)
    for region in plan.regions(nvas):
        for instance in (0, 1):
            routers.write_config(routers.speaker_name(region, instance), birdconf.speaker(region, instance, [], False), directory)
    print(directory)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m anycast_lab.regions", description="The lab's fabric, Route Server speakers and edge.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("sync", help="apply ARM state to the speakers and the fabric (the emulator's --on-change-cmd)")
    p.add_argument("--state", default=os.environ.get("ARM_STATE"), help="emulator state file (default $ARM_STATE)")
    p.add_argument("--force", action="store_true", help="apply everything even when unchanged")
    p = sub.add_parser("routes", help="learned/advertised routes of a peer in Azure's shape (the emulator's --routes-cmd)")
    p.add_argument("hub")
    p.add_argument("connection")
    p.add_argument("peer_ip")
    p.add_argument("kind", choices=("learned", "advertised"))
    p = sub.add_parser("peer-state", help="connectionState of a peer (the emulator's --peer-state-cmd)")
    p.add_argument("hub")
    p.add_argument("connection")
    p.add_argument("peer_ip")
    p = sub.add_parser("render", help="write lab.yml (topology spec), seed.json (ARM seed) and bird/*.conf into DIR, to read them")
    p.add_argument("dir")
    p.add_argument("--nvas", help=f"NVAs per region ({plan.MIN_NVAS}-{plan.MAX_NVAS}, or REGION=N,...; "
                   f"default: the lab's size, else ${plan.NVAS_ENV}, else {plan.DEFAULT_NVAS})")
    p = sub.add_parser("birdc", help="run birdc against one of the lab's routers")
    p.add_argument("router", choices=routers.names())
    p.add_argument("args", nargs=argparse.REMAINDER)
    p = sub.add_parser("convergence-delay", help="show or set the seconds the edge holds the updates it passes to on-premises")
    p.add_argument("seconds", type=float, nargs="?", help=f"0 to {convergence.MAX_DELAY:g}; none: show the current delay")
    args = parser.parse_args(argv)
    try:
        if args.command == "sync":
            if not args.state:
                raise LabError("no state file: pass --state or set ARM_STATE")
            changed = sync.apply(args.state, force=args.force)
            print("applied: " + (", ".join(changed) if changed else "nothing changed"), file=sys.stderr)
        elif args.command == "routes":
            print(json.dumps(routes.peer_routes(args.hub, args.peer_ip, args.kind)))
        elif args.command == "render":
            render(args.dir, None if args.nvas is None else plan.parse_sizes(args.nvas, "--nvas"))
        elif args.command == "peer-state":
            print(routes.peer_state(args.hub, args.peer_ip))
        elif args.command == "convergence-delay":
            if args.seconds is not None:
                convergence.write_delay(lab_dir(), args.seconds)
            print(f"{convergence.read_delay(convergence.delay_file(lab_dir())):g}")
        else:
            sys.stdout.write(routers.birdc(args.router, *args.args, check=False))
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


main()
