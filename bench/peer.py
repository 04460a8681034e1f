"""Benchmark tap-salesforce-crm next to singer-io tap-salesforce 2.8.1: `python bench/peer.py`.

See the "A peer, side by side" section of bench/README.md for what is measured.
"""

from __future__ import annotations

import sys

from harness.peer_cli import main

if __name__ == "__main__":
    sys.exit(main())
