"""The tolerant reader's verdicts on single lines (the targets' sandbox tests show the rest)."""

from __future__ import annotations

import json
from decimal import Decimal

from crm_sync_mapping.singer_input import MAX_DEPTH, PROBLEM, read_message


def line(record: object) -> str:
    return json.dumps({"type": "RECORD", "stream": "users", "record": record})


def test_a_good_line_parses_as_singer_sdk_would() -> None:
    text = line({"id": "u1", "score": 0.5, "big": 10**30})
    message = read_message(text, 1)
    assert message == json.loads(text, parse_float=Decimal)
    assert PROBLEM not in message


def test_a_wide_record_is_not_mistaken_for_a_deep_one() -> None:
    segments = [{"id": f"s{n}", "tags": [n]} for n in range(200)]
    assert PROBLEM not in read_message(line({"id": "u1", "segments": segments}), 1)


def test_depth_is_counted_exactly_at_the_limit() -> None:
    def nested(levels: int) -> object:
        value: object = []
        for _ in range(levels - 2):
            value = [value]
        return {"id": "u1", "deep": value}

    assert PROBLEM not in read_message(line(nested(MAX_DEPTH)), 1)
    message = read_message(line(nested(MAX_DEPTH + 1)), 1)
    assert message[PROBLEM] == (
        f"it nests {MAX_DEPTH + 1} levels deep (at most {MAX_DEPTH} are read)")
    assert message["record"] == {"id": "u1"}


def test_invalid_text_is_found_however_it_arrives() -> None:
    escaped = read_message(line({"id": "u1", "name": "cut \ud83d"}), 1)  # a \\ud83d escape
    raw = read_message('{"type": "RECORD", "stream": "users", "record": {"id": "u2", '
                       '"name": "\udcff"}}', 2)  # a byte that was not UTF-8
    emoji = read_message(line({"id": "u3", "name": "\U0001f600"}), 3)
    assert escaped[PROBLEM].startswith("name holds text that is not valid Unicode")
    assert escaped["record"]["name"] == "cut \ufffd"
    assert raw[PROBLEM].startswith("name holds text")
    assert PROBLEM not in emoji
