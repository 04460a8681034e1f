"""Running the test tap (tests/fixtures/tap-jsonl) as an upstream tap would run: a process.

With `batch` set, its config carries singer-sdk's `batch_config`, so it sends BATCH
messages whose manifests point at JSONL files (gzip unless told otherwise) in `tmp_path`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

TAP = Path(__file__).resolve().parents[1] / "fixtures" / "tap-jsonl" / "tap_jsonl.py"


def tap_messages(tmp_path: Path, stream: str, schema: dict[str, Any],
                 records: list[dict[str, Any]], *, key: str, batch: bool,
                 compression: str = "gzip", rows_per_file: int = 2) -> list[dict[str, Any]]:
    """The messages the tap writes for `records`, RECORD or BATCH."""
    folder = tmp_path / ("batch" if batch else "record")
    folder.mkdir()
    data = folder / "records.jsonl"
    data.write_text("".join(json.dumps(record) + "\n" for record in records))
    config: dict[str, Any] = {"path": str(data), "stream": stream, "key_properties": [key],
                              "schema": schema}
    if batch:
        config["batch_config"] = {
            "encoding": {"format": "jsonl", "compression": compression},
            "storage": {"root": (folder / "files").as_uri(), "prefix": f"{stream}-"},
            "batch_size": rows_per_file,
        }
        (folder / "files").mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    answer = subprocess.run([sys.executable, str(TAP), "--config", str(folder / "config.json")],
                            capture_output=True, text=True, check=True, timeout=120)
    return [json.loads(line) for line in answer.stdout.splitlines() if line.strip()]
