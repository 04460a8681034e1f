"""BATCH messages: every line of every batch file goes the way a RECORD message goes.

singer-sdk's own handling reads a whole file into one list and hands the raw records to the
sink's `process_batch`, past stream maps, validation and key checks. An upstream tap with
`batch_config` (JSONL, optionally gzip, `file://` or any fsspec URL in the manifest) would
then bypass every check that gives a record its outcome. Here the files are read one line at
a time and each line becomes the RECORD message it stands for, so memory stays bounded and a
record gets the same outcome however it arrived. Both targets have this module (two
distributions, and neither plugin may import the other); only the error's base class differs.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator, Mapping
from typing import IO, Any

from singer_sdk.helpers._batch import (
    BaseBatchFileEncoding,
    BatchConfig,
    BatchFileFormat,
    StorageTarget,
)
from singer_sdk.singerlib.json import deserialize_json


class BatchFileError(Exception):
    """A BATCH message or file that cannot be read; the message names the file and line."""


def batch_record_messages(message: Mapping[str, Any],
                          config: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The RECORD messages a BATCH message stands for, one file line at a time."""
    stream = message["stream"]
    encoding = BaseBatchFileEncoding.from_dict(dict(message["encoding"]))
    if encoding.format != BatchFileFormat.JSONL:
        raise BatchFileError(
            f"BATCH message of stream '{stream}': encoding format '{encoding.format}' is not "
            "supported; configure the tap's batch_config with encoding format jsonl")
    raw_config = config.get("batch_config")
    storage = BatchConfig.from_dict(raw_config).storage if raw_config else None
    for url in message["manifest"]:
        head, tail = StorageTarget.split_url(url)
        try:
            with (storage or StorageTarget.from_url(head)).open(tail, mode="rb") as raw:
                for number, line in enumerate(_lines(raw, encoding.compression), start=1):
                    if line.strip():
                        yield {"type": "RECORD", "stream": stream,
                               "record": _record(line, url, number)}
        except (OSError, EOFError) as exc:
            raise BatchFileError(f"BATCH file {url} of stream '{stream}': {exc}") from None


def _lines(raw: IO[bytes], compression: str | None) -> Iterator[bytes]:
    if compression == "gzip":
        with gzip.GzipFile(fileobj=raw) as unpacked:
            yield from unpacked
    elif compression in (None, "none"):
        yield from raw
    else:
        raise BatchFileError(f"BATCH compression '{compression}' is not supported (gzip or none)")


def _record(line: bytes, url: str, number: int) -> dict[str, Any]:
    try:
        record = deserialize_json(line)
    except ValueError as exc:
        raise BatchFileError(f"BATCH file {url} line {number}: not JSON ({exc})") from None
    if not isinstance(record, dict):
        raise BatchFileError(f"BATCH file {url} line {number}: not a JSON object")
    return record
