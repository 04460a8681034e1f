"""Singer input as both targets read it: no single line can stop a night's run.

singer-sdk parses each line with `json.loads` and trusts the rest: a byte that is not UTF-8
ends the read of standard input, a lone UTF-16 surrogate (a browser cutting an emoji in half)
parses but fails whatever encodes it later, a record nested 100,000 levels deep raises
`RecursionError`, and a line that is not a message, or a `"record"` that is text or null,
stops the run or vanishes. `TolerantReader` reads the same way and turns each of these into
something a target can account for:

- a RECORD whose record cannot be used keeps its stream and carries the reason under
  `PROBLEM` (the target rejects it with that reason, its key when one can be read);
- a line that is not a Singer message at all goes to `on_unreadable`, numbered.

The checks cost one regular-expression scan of each line; the rest runs only for lines it flags.
"""

from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

import msgspec
from singer_sdk.singerlib.encoding import SimpleSingerReader

#: Key of a RECORD message whose record is unusable; its value says why.
PROBLEM = "__problem__"
#: The most levels of nesting a record may have (as many as a mapping file may).
MAX_DEPTH = 64
#: How much of an unreadable line a report or log line repeats.
EXCERPT_CHARS = 200

# A surrogate, as a code point (bytes that were not UTF-8, read with `surrogateescape`) or as
# a JSON escape (valid pairs match too; the record walk then finds only the lone ones).
_SUSPECT_TEXT = re.compile(r"[\ud800-\udfff]|\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")
_DECODER = msgspec.json.Decoder(float_hook=Decimal)
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]:,]|[^\s{}\[\]:,"]+')


@dataclass(frozen=True)
class UnreadableLine:
    """A line of input that is not a Singer message; counted and reported, never silent."""

    number: int
    reason: str
    excerpt: str


def tolerant_stdin() -> Any:
    """Standard input that reads bytes which are not UTF-8 as lone surrogates, not an error."""
    stdin = sys.stdin
    if isinstance(stdin, io.TextIOWrapper):
        stdin.reconfigure(errors="surrogateescape")
    return stdin


class TolerantReader(SimpleSingerReader):
    """singer-sdk's reader, numbering lines and turning bad ones into reasons (see module)."""

    def __init__(self) -> None:
        super().__init__()
        self.line_number = 0
        self.on_unreadable: Callable[[UnreadableLine], None] | None = None

    @property
    def default_input(self) -> Any:  # type: ignore[override]
        return tolerant_stdin()

    def deserialize_json(self, line: str) -> dict:
        self.line_number += 1
        return read_message(line, self.line_number)

    def _process_unknown_message(self, message_dict: dict) -> None:
        unreadable = message_dict.get("unreadable")
        if not isinstance(unreadable, UnreadableLine):
            unreadable = UnreadableLine(
                self.line_number,
                f"unknown Singer message type {message_dict['type']!r}",
                excerpt(json.dumps(message_dict, default=str)),
            )
        if self.on_unreadable is None:
            raise ValueError(f"line {unreadable.number}: {unreadable.reason}")
        self.on_unreadable(unreadable)


def read_message(line: str, number: int) -> dict[str, Any]:
    """The message on a line; an unusable record or line is marked, never raised.

    msgspec parses a good line (as `json.loads(parse_float=Decimal)` does, in a third of the
    time) and refuses every line with invalid text; those, and any other line it refuses,
    are parsed again by `json.loads` and checked.
    """
    try:
        message = _DECODER.decode(line)
    except (msgspec.DecodeError, RecursionError, UnicodeError):
        return _read_carefully(line, number)
    if (isinstance(message, dict) and message.get("type") == "RECORD"
            and isinstance(message.get("record"), dict)
            and isinstance(message.get("stream"), str)
            and line.count("{") + line.count("[") <= MAX_DEPTH):
        return message
    return _checked(message, line, number, text_checked=True)


def _read_carefully(line: str, number: int) -> dict[str, Any]:
    try:
        message = json.loads(line, parse_float=Decimal)
    except RecursionError:
        return _too_deep(line, number)
    except ValueError as exc:  # JSONDecodeError
        return _unreadable(number, f"not JSON ({exc})", line)
    return _checked(message, line, number, text_checked=False)


def _checked(message: Any, line: str, number: int, *, text_checked: bool) -> dict[str, Any]:
    """`text_checked`: msgspec parsed the line, so it holds no invalid text."""
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return _unreadable(number, "not a Singer message (a JSON object with a 'type')", line)
    if message["type"] != "RECORD":
        return message
    if not isinstance(message.get("stream"), str):
        return _unreadable(number, "a RECORD message without a stream name", line)
    if "record" not in message:
        return {**message, "record": {}, PROBLEM: "the RECORD message has no 'record'"}
    record = message["record"]
    if not isinstance(record, dict):
        message["record"] = {}
        message[PROBLEM] = f"its record is {_kind(record)}, not a JSON object"
        return message
    problem = record_problem(record, line, text_checked=text_checked)
    if problem is not None:
        message[PROBLEM] = problem
        if problem.startswith("it nests"):
            message["record"] = _top_level_values(record)
    return message


def record_problem(record: dict[str, Any], line: str, *, text_checked: bool = False) -> str | None:
    """Why a parsed record is unusable, or None; invalid text is replaced in place (U+FFFD).

    `text_checked` skips the scan for invalid text (a line msgspec parsed has none: it
    refuses lone surrogates and bytes that are not UTF-8).
    """
    if line.count("{") + line.count("[") > MAX_DEPTH:
        depth = nesting_depth(record)
        if depth > MAX_DEPTH:
            return f"it nests {depth} levels deep (at most {MAX_DEPTH} are read)"
    if not text_checked and _SUSPECT_TEXT.search(line):
        fields = replace_invalid_text(record)
        if fields:
            return (f"{', '.join(fields)} hold{'s' if len(fields) == 1 else ''} text that is "
                    "not valid Unicode (a lone UTF-16 surrogate, or bytes that are not UTF-8; "
                    "shown as U+FFFD)")
    return None


def replace_invalid_text(value: Any) -> dict[str, int]:
    """Replace lone surrogates in every string of a JSON value, in place (U+FFFD).

    Returns how many were replaced at each path (keys are repaired too). Walks with a stack,
    so a deep value cannot exhaust the interpreter's recursion limit.
    """
    changed: dict[str, int] = {}
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        node, path = stack.pop()
        items = (list(node.items()) if isinstance(node, dict)
                 else list(enumerate(node)) if isinstance(node, list) else [])
        for key, item in items:
            name = key
            if isinstance(key, str):
                name, count = _LONE_SURROGATE.subn("\ufffd", key)
                if count:
                    node[name] = node.pop(key)
                    changed[_join(path, name)] = count
            if isinstance(item, str):
                repaired, count = _LONE_SURROGATE.subn("\ufffd", item)
                if count:
                    node[name] = repaired
                    where = _join(path, name)
                    changed[where] = changed.get(where, 0) + count
            elif isinstance(item, (dict, list)):
                stack.append((item, _join(path, name)))
    return changed


def nesting_depth(value: Any) -> int:
    """Levels of objects and arrays in a JSON value (a scalar is 0), without recursion.

    Only containers are visited, so a wide record (a user in 100 segments) costs about as
    much as parsing it; most lines never get here (see `record_problem`).
    """
    if not isinstance(value, (dict, list)):
        return 0
    deepest = 1
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return deepest


def excerpt(text: str) -> str:
    """The start of a line, on one line and encodable: fit for a log or a report."""
    flat = " ".join(_LONE_SURROGATE.sub("\ufffd", text[:EXCERPT_CHARS * 2]).split())
    return flat[:EXCERPT_CHARS] + ("..." if len(text) > EXCERPT_CHARS else "")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, str):
        return "text"
    return "an array" if isinstance(value, list) else "a number"


def _join(path: str, name: Any) -> str:
    if isinstance(name, int):
        return f"{path}[{name}]"
    return f"{path}.{name}" if path else str(name)


def _top_level_values(record: dict[str, Any]) -> dict[str, Any]:
    """What a too-deep record keeps for its reject: its plain top-level values (keys)."""
    return {name: value for name, value in record.items() if not isinstance(value, (dict, list))}


def _unreadable(number: int, reason: str, line: str) -> dict[str, Any]:
    return {"type": "UNREADABLE", "unreadable": UnreadableLine(number, reason, excerpt(line))}


def _too_deep(line: str, number: int) -> dict[str, Any]:
    """A line too deep to parse: a RECORD keeps its stream and plain keys for its reject."""
    outer, record = _shallow_members(line)
    reason = f"it nests deeper than {MAX_DEPTH} levels (too deep to read)"
    if outer.get("type") == "RECORD" and isinstance(outer.get("stream"), str):
        return {"type": "RECORD", "stream": outer["stream"], "record": record, PROBLEM: reason}
    return _unreadable(number, f"a line that {reason[3:]}", line)


def _shallow_members(line: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Scalar members of the message (depth 1) and of its "record" (depth 2), by parts.

    A linear scan that never recurses, for lines `json.loads` cannot parse for depth alone.
    """
    outer: dict[str, Any] = {}
    record: dict[str, Any] = {}
    # Each open container: the member name it was opened under, and whether it is an object.
    path: list[tuple[str | None, bool]] = []
    key: str | None = None
    expecting_key = False
    for match in _TOKEN.finditer(line):
        part = match.group()
        if part in "{[":
            path.append((key, part == "{"))
            expecting_key, key = part == "{", None
        elif part in "}]":
            if path:
                path.pop()
            expecting_key, key = False, None
        elif part == ",":
            expecting_key, key = bool(path) and path[-1][1], None
        elif part == ":":
            expecting_key = False
        elif expecting_key:
            key = _scalar(part) if part.startswith('"') else None
        else:
            if key is not None and len(path) == 1:
                outer[key] = _scalar(part)
            elif key is not None and len(path) == 2 and path[1][0] == "record":
                record[key] = _scalar(part)
            key = None
    return outer, record


def _scalar(token: str) -> Any:
    try:
        return json.loads(token, parse_float=Decimal)
    except ValueError:
        return None


class HoldsInvalid(Protocol):
    """A sink that can take a record the reader marked unusable, as a reject to report."""

    is_full: bool

    def hold_invalid(self, record: dict[str, Any], problem: str) -> None: ...


def hold_invalid_record(target: Any, message: dict[str, Any]) -> bool:
    """Give a marked RECORD to its stream's sink as a reject; False for a usable one.

    Called first by a target's `_process_record_message`. The stream must have had its
    SCHEMA (singer-sdk's own error otherwise); with stream maps, the first alias's sink
    takes it.
    """
    problem = message.pop(PROBLEM, None)
    if problem is None:
        return False
    stream = message["stream"]
    maps = target.mapper.stream_maps.get(stream) or []
    name = maps[0].stream_alias if maps else stream
    target._assert_sink_exists(name)  # singer-sdk's "RECORD before SCHEMA" error
    sink: HoldsInvalid = target.get_sink(name)
    sink.hold_invalid(message["record"], problem)
    if sink.is_full:
        target.drain_one(sink)
    return True


class TolerantTarget:
    """Mixin for a singer-sdk `Target` (listed before it): the behaviour both targets share.

    It reads with `TolerantReader`, makes a marked RECORD a reject of its stream, and ends
    the run on SIGTERM or SIGINT as a failure. singer-sdk would drain every sink on a signal
    (write more after being told to stop) and exit 0. Here the target's error path runs
    instead: open work is aborted, the report says "failed", no STATE follows, and the
    exit code says which signal it was. The target still sets the reader's `on_unreadable`.
    """

    message_reader_class = TolerantReader
    logger: Any

    def _process_record_message(self, message_dict: dict) -> None:
        if not hold_invalid_record(self, message_dict):
            super()._process_record_message(message_dict)  # type: ignore[misc]

    def _handle_termination(self, signum: int, frame: Any) -> None:
        self.logger.warning("Received signal %d: stopping; this run is reported failed", signum)
        raise SystemExit(128 + signum)
