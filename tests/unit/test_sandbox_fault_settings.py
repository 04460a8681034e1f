"""Both emulators refuse a mistyped fault with a message naming it, and keep defaults."""

from __future__ import annotations

import re
from typing import Any

import pytest
from emulators.personalization.faults import FaultSettings as PznFaults
from emulators.personalization.faults import parse_settings as parse_pzn
from emulators.salesforce.faults import FaultSettings as SfFaults
from emulators.salesforce.faults import parse_settings as parse_sf


def test_keys_left_out_keep_their_defaults() -> None:
    assert parse_pzn({"rate_429": 0.5}) == PznFaults(rate_429=0.5, retry_after=1)
    assert parse_sf({}) == SfFaults()


def test_values_are_typed_as_declared() -> None:
    settings = parse_sf({"http_503_rate": 1, "fail_batches": 2, "batch_delay_seconds": 3,
                         "seed": 7})
    assert settings == SfFaults(http_503_rate=1.0, fail_batches=2, batch_delay_seconds=3.0,
                                seed=7)
    assert isinstance(settings.http_503_rate, float)


@pytest.mark.parametrize(("parse", "body", "message"), [
    (parse_pzn, [], 'faults must be a JSON object, e.g. {"rate_429": 0.2}'),
    (parse_pzn, {"bogus": 1}, "unknown fault 'bogus'; known: busy_next, busy_rate,"),
    (parse_pzn, {"rate_5xx": 1.5}, "rate_5xx must be a number between 0 and 1, got 1.5"),
    (parse_pzn, {"busy_rate": True}, "busy_rate must be a number between 0 and 1, got True"),
    (parse_pzn, {"retry_after": -1}, "retry_after must be a non-negative integer, got -1"),
    (parse_pzn, {"fail_next": 1.0}, "fail_next must be a non-negative integer, got 1.0"),
    (parse_pzn, {"seed": "x"}, "seed must be an integer, got 'x'"),
    (parse_sf, {"batch_delay_seconds": 601},
     "batch_delay_seconds must be between 0 and 600, got 601"),
    (parse_sf, {"fail_batches": False}, "fail_batches must be a non-negative integer, got False"),
])
def test_mistyped_faults_are_named(parse: Any, body: Any, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        parse(body)
