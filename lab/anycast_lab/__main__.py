"""`python -m anycast_lab up|down|status|demo|inventory` (the venv's Python: `make venv` installs the lab): the two-region lab.

  up [--nvas N] [--convergence-delay S]
                                 bring the lab up with N NVAs per region (1-8; default $ANYCAST_LAB_NVAS, else 2);
                                 one size per region: --nvas westeurope=1,northeurope=2 (a region not named gets 2);
                                 S: seconds the ExpressRoute edge holds the route updates it passes to on-premises,
                                 as Azure takes to converge (default 0; change it later with
                                 `python -m anycast_lab.regions convergence-delay S`)
  demo [--nvas N]                up, site.yml per region, traffic, failover
  status                         what runs, and the size the lab is up with
  inventory [--nvas N] [--out DIR]   write an inventory per region (DIR/<region>) for the lab's size (or N); print the paths
  down                           remove everything the lab made
"""
import argparse
import sys

from . import inventory
from .hosts.util import LabError
from .lab import Lab, demo
from .regions import plan


def _nvas(value):
    try:
        return plan.parse_sizes(value, "--nvas")
    except LabError as exc:
        raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[1]) from None


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m anycast_lab", description="The anycast.nva two-region lab.")
    parser.add_argument("command", choices=("up", "down", "status", "demo", "inventory"))
    parser.add_argument("--nvas", type=_nvas, metavar="N",
                        help=f"NVAs per region, {plan.MIN_NVAS} to {plan.MAX_NVAS}: N for both, or REGION=N,... "
                        f"(westeurope=1,northeurope=2; a region not named gets {plan.DEFAULT_NVAS}) (up, demo, inventory; "
                        f"default ${plan.NVAS_ENV}, else {plan.DEFAULT_NVAS}; inventory: default the running lab's size)")
    parser.add_argument("--convergence-delay", type=float, metavar="S",
                        help="up, demo: seconds the edge holds the updates it passes to on-premises (default: keep, 0 on a fresh lab)")
    parser.add_argument("--out", metavar="DIR", help="inventory: where to write DIR/<region>/ (default <lab dir>/inventories)")
    args = parser.parse_args(argv)
    if args.nvas is not None and args.command not in ("up", "demo", "inventory"):
        parser.error(f"--nvas does not apply to {args.command} (the lab records its size when it comes up)")
    if args.out is not None and args.command != "inventory":
        parser.error("--out applies to inventory only")
    if args.convergence_delay is not None and args.command not in ("up", "demo"):
        parser.error(f"--convergence-delay does not apply to {args.command}")
    lab = Lab(nvas=args.nvas, convergence_delay=args.convergence_delay)
    try:
        if args.command == "up":
            lab.up()
        elif args.command == "down":
            lab.down()
        elif args.command == "status":
            lab.status()
        elif args.command == "inventory":
            for name, path in inventory.write(args.out, args.nvas, lab.base).items():
                print(f"{name}\t{path}")
        else:
            demo(lab)
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


main()
