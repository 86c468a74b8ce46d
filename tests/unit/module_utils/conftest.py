"""Make the collection importable as ansible_collections.anycast.nva (through `make collection-link`)."""
import os
import sys

BUILD = os.path.join(os.path.dirname(__file__), "..", "..", "..", ".build")
if not os.path.isdir(os.path.join(BUILD, "ansible_collections", "anycast", "nva")):
    raise RuntimeError("run `make collection-link` first: .build/ansible_collections/anycast/nva is missing")
sys.path.insert(0, os.path.abspath(BUILD))
