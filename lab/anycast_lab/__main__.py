"""`python -m anycast_lab up|down|status|demo` (PYTHONPATH=lab): the two-region lab."""
import argparse
import sys

from .hosts.util import LabError
from .lab import Lab, demo


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m anycast_lab", description="The anycast.nva two-region lab.")
    parser.add_argument("command", choices=("up", "down", "status", "demo"))
    args = parser.parse_args(argv)
    lab = Lab()
    try:
        if args.command == "up":
            lab.up()
        elif args.command == "down":
            lab.down()
        elif args.command == "status":
            lab.status()
        else:
            demo(lab)
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


main()
