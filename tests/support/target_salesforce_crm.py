"""Running target-salesforce-crm against the Salesforce sandbox, as its tests do.

The target reads an in-memory Singer stream (`listen()` on a StringIO): what a `meltano run`
would do without Meltano's start-up time. What the tests assert on comes from the sandbox's
own record store and ledger, read through its admin routes.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from emulators import defaults
from target_salesforce_crm.target.target import TargetSalesforceCRM

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MAPPING = ROOT / "transforms" / "personalization-to-crm.yml"
#: The sandbox's admin route takes this many records per insert.
SEED_CHUNK = 5_000


def config_for(sf: Any, tmp_path: Path, mapping: str | Path = DEFAULT_MAPPING,
               **overrides: Any) -> dict[str, Any]:
    """Client credentials, a mapping (file or YAML text), short polls and back-offs."""
    if isinstance(mapping, str):
        path = tmp_path / "mapping.yml"
        path.write_text(mapping)
        mapping = path
    return {
        "auth_url": sf.url, "ca_bundle": sf.ca_bundle,
        "client_id": defaults.SF_CLIENT_ID, "client_secret": defaults.SF_CLIENT_SECRET,
        "mapping_file": str(mapping), "output_dir": str(tmp_path / "out"),
        "fingerprint_db": str(tmp_path / "fingerprints.sqlite"),
        "poll_initial": 0.05, "poll_max": 0.2, "retry_backoff": 0.05, **overrides,
    }


def singer(stream: str, schema: dict[str, Any], records: list[dict[str, Any]],
           state: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """SCHEMA, one RECORD per record, and an optional STATE at the end."""
    messages: list[dict[str, Any]] = [
        {"type": "SCHEMA", "stream": stream, "schema": schema, "key_properties": ["id"]},
    ]
    messages += [{"type": "RECORD", "stream": stream, "record": r} for r in records]
    if state is not None:
        messages.append({"type": "STATE", "value": state})
    return messages


def lines(messages: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(m) + "\n" for m in messages)


def run_target(cfg: dict[str, Any], messages: list[dict[str, Any]]) -> TargetSalesforceCRM:
    target = TargetSalesforceCRM(config=cfg)
    target.listen(io.StringIO(lines(messages)))
    return target


def report_of(cfg: dict[str, Any]) -> dict[str, Any]:
    """The run report the target wrote into its output folder."""
    return dict(json.loads((Path(cfg["output_dir"]) / "report.json").read_text()))


def seed(sf: Any, sobject: str, rows: list[dict[str, Any]]) -> list[str]:
    """Insert rows straight into the sandbox's store; their Ids in order."""
    ids: list[str] = []
    for start in range(0, len(rows), SEED_CHUNK):
        ids += sf.admin("POST", f"records/{sobject}", json=rows[start:start + SEED_CHUNK])
    return ids


def records(sf: Any, sobject: str, fields: str, where: str | None = None) -> list[dict]:
    params = {"fields": fields, **({"where": where} if where else {})}
    return list(sf.admin("GET", f"records/{sobject}", params=params))


def kinds(sf: Any) -> dict[str, int]:
    """API calls in the sandbox's ledger, by kind."""
    return dict(sf.ledger()["by_kind"])


class HookedInput(io.StringIO):
    """Singer input that calls `on_line(n)` before handing line n to the target.

    Lets a test change the world half-way through a run (expire the sessions, make
    singer-sdk drain its sinks) at a chosen record.
    """

    def __init__(self, text: str, on_line: Callable[[int], None]) -> None:
        super().__init__(text)
        self.on_line = on_line

    def __iter__(self) -> Iterator[str]:
        number = 0
        while line := self.readline():
            number += 1
            self.on_line(number)
            yield line
