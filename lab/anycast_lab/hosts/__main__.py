"""CLI of the lab's host machinery: `python -m anycast_lab.hosts --help`."""

from .cli import main

main()
