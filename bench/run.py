"""Benchmark the plugins against the sandboxes: `python bench/run.py --size 10k,100k,1m`.

See bench/README.md for what is measured and how to read the results.
"""

from __future__ import annotations

import sys

from harness.cli import main

if __name__ == "__main__":
    sys.exit(main())
