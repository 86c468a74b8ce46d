"""Make the lab package importable (PYTHONPATH=lab) for the spec tests."""
import os
import sys

LAB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "lab")
if LAB not in sys.path:
    sys.path.insert(0, LAB)
