"""ARM + Entra ID emulator for the anycast.nva lab and tests (see README.md in this directory)."""
