"""`personalization-mapping init [DIR]`: the example mapping files into a user's project.

The work is the mapping library's (`crm_sync_mapping.examples`, carried inside this
distribution); this module gives it this distribution's command name.
"""

from __future__ import annotations

import sys

from crm_sync_mapping.examples import main as examples_main

COMMAND = "personalization-mapping"


def main() -> None:
    sys.exit(examples_main(prog=COMMAND))
