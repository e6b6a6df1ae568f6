#!/usr/bin/env python3
"""The obembed demo: ingest examples/debian-sample into a temporary embedded seekdb and search it (offline).

usage: python examples/demo.py [--keep DIR] [--model SPEC]      (same as: python -m obembed.ingest.demo)
"""

import sys
from pathlib import Path

from obembed.ingest.demo import main

if __name__ == "__main__":
    args = sys.argv[1:]
    if "--corpus" not in args:
        args = ["--corpus", str(Path(__file__).resolve().parent / "debian-sample"), *args]
    sys.exit(main(args))
