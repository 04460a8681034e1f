"""Floor for the tap: page through the user export with a bare `requests.Session` loop.

Same requests as tap-personalization (page from 0, `pageSize`, until the empty page), each
page parsed with `.json()` and counted, nothing else. Run as its own process and measured
like the tap. The API secret comes from the environment, never the command line.
"""

from __future__ import annotations

import json
import os
import sys

import requests

SECRET_ENV = "BENCH_PZN_API_KEY_SECRET"


def main(base_url: str, dataset: str, key_id: str, ca_bundle: str, page_size: int) -> None:
    records = pages = 0
    with requests.Session() as session:
        session.auth = (key_id, os.environ[SECRET_ENV])
        url = f"{base_url}/api/dataset/{dataset}/users.json"
        while True:
            answer = session.get(url, params={"page": pages, "pageSize": page_size},
                                 verify=ca_bundle, timeout=120)
            answer.raise_for_status()
            rows = answer.json()
            pages += 1
            if not rows:
                break
            records += len(rows)
    print(json.dumps({"records": records, "pages": pages}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
