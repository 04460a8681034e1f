"""BATCH messages as both targets read them: every file line goes the way a RECORD line goes.

singer-sdk's own handling reads a whole batch file into one list and hands the raw records
to the sink's `process_batch`, past stream maps, validation, key checks and the tolerant
reading of `singer_input`. An upstream tap with `batch_config` (JSONL, optionally gzip,
`file://` or any fsspec URL in the manifest) would then bypass everything that gives a
record its outcome. Here the files are read one line at a time, each line is read exactly as
`TolerantReader` reads the RECORD message it stands for (invalid text, too deep, not an
object: a marked record; not JSON: an unreadable line), and the target hands the message to
its own RECORD path. Memory stays bounded by the target's drains, not by the file.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any

from singer_sdk.helpers._batch import (
    BaseBatchFileEncoding,
    BatchConfig,
    BatchFileFormat,
    StorageTarget,
)

from crm_sync_mapping.singer_input import PROBLEM, UnreadableLine, excerpt, read_message


class BatchFileError(Exception):
    """A BATCH message or file that cannot be read at all; the message names it."""


def batch_record_messages(
    message: Mapping[str, Any], config: Mapping[str, Any],
    on_unreadable: Callable[[UnreadableLine], None] | None,
) -> Iterator[dict[str, Any]]:
    """The RECORD messages a BATCH message stands for, one file line at a time.

    `config` is the target's (its own `batch_config.storage` opens the files when set); an
    unreadable line goes to `on_unreadable`, as the target's reader does with one on stdin.
    """
    stream = str(message["stream"])
    encoding = BaseBatchFileEncoding.from_dict(dict(message["encoding"]))
    if encoding.format != BatchFileFormat.JSONL:
        raise BatchFileError(
            f"BATCH message of stream '{stream}': encoding format '{encoding.format}' is not "
            "supported; configure the tap's batch_config with encoding format jsonl")
    raw_config = config.get("batch_config")
    storage = BatchConfig.from_dict(raw_config).storage if raw_config else None
    prefix = '{"type":"RECORD","stream":' + json.dumps(stream) + ',"record":'
    for url in message["manifest"]:
        head, tail = StorageTarget.split_url(url)
        try:
            with (storage or StorageTarget.from_url(head)).open(tail, mode="rb") as raw:
                for number, line in enumerate(_lines(raw, encoding.compression), start=1):
                    text = line.decode("utf-8", "surrogateescape").strip()
                    if not text:
                        continue
                    record_message = read_message(prefix + text + "}", number)
                    if _is_record_of(record_message, stream):
                        yield record_message
                    else:
                        _unreadable(text, url, number, on_unreadable)
        except (OSError, EOFError) as exc:
            raise BatchFileError(f"BATCH file {url} of stream '{stream}': {exc}") from None


def _is_record_of(message: Mapping[str, Any], stream: str) -> bool:
    """The line was one JSON value: a line like `{...},"stream":"x"` would make the wrapped
    text another message (it is then unreadable, as it is on its own)."""
    return (message.get("type") == "RECORD" and message.get("stream") == stream
            and set(message) <= {"type", "stream", "record", PROBLEM})


def _lines(raw: IO[bytes], compression: str | None) -> Iterator[bytes]:
    if compression == "gzip":
        with gzip.GzipFile(fileobj=raw) as unpacked:
            yield from unpacked
    elif compression in (None, "none"):
        yield from raw
    else:
        raise BatchFileError(f"BATCH compression '{compression}' is not supported (gzip or none)")


def _unreadable(text: str, url: str, number: int,
                on_unreadable: Callable[[UnreadableLine], None] | None) -> None:
    try:
        json.loads(text)
        reason = "not a JSON object"
    except ValueError as exc:
        reason = f"not JSON ({exc})"
    except RecursionError:
        reason = "nested too deep to read"
    line = UnreadableLine(number, f"{reason}, in BATCH file {url}", excerpt(text))
    if on_unreadable is None:
        raise BatchFileError(f"BATCH file {url} line {number}: {reason}")
    on_unreadable(line)
