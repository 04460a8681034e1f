"""Floor: read a Singer stream and `json.loads` each line, nothing else.

Run as its own process (`python parse_floor.py FILE`) so it is measured exactly like the
plugins; prints the number of RECORD messages.
"""

from __future__ import annotations

import json
import sys


def main(path: str) -> None:
    records = 0
    with open(path, "rb") as stream:
        for line in stream:
            if json.loads(line).get("type") == "RECORD":
                records += 1
    print(json.dumps({"records": records}))


if __name__ == "__main__":
    main(sys.argv[1])
