"""Conversions, normalisers and source paths: the value-level rules of the mapping format."""

from __future__ import annotations

from typing import Any

import pytest
from crm_sync_mapping import ConversionError, FieldMapping, normalize_company_name, normalize_email
from crm_sync_mapping.build import build_conversion
from crm_sync_mapping.conversions import InvalidValue, apply_all
from crm_sync_mapping.normalize import apply_normalizers
from crm_sync_mapping.paths import PathError, parse_path


def convert(steps: list[Any], value: Any) -> Any:
    return apply_all(tuple(build_conversion(step) for step in steps), value)


@pytest.mark.parametrize(("steps", "value", "expected"), [
    (["trim"], "  a b  ", "a b"),
    (["lowercase"], "MiXed", "mixed"),
    (["uppercase"], "MiXed", "MIXED"),
    (["string"], 12, "12"),
    (["string"], 12.0, "12"),
    (["string"], True, "true"),
    (["number"], " 12 ", 12),
    (["number"], "0.25", 0.25),
    (["number"], "", None),
    (["integer"], "42", 42),
    (["integer"], 42.0, 42),
    ([{"round": 2}], 0.12567, 0.13),
    ([{"round": 0}], 2.5, 2),
    (["epoch_ms_to_datetime"], 1732449600123, "2024-11-24T12:00:00.123Z"),
    (["epoch_ms_to_datetime"], "1732449600000", "2024-11-24T12:00:00.000Z"),
    (["epoch_ms_to_date"], 1732449600000, "2024-11-24"),
    (["iso_datetime"], "2024-11-24T12:00:00Z", "2024-11-24T12:00:00.000Z"),
    (["iso_datetime"], "2024-11-24T12:00:00.000+0000", "2024-11-24T12:00:00.000Z"),
    (["iso_datetime"], "2024-11-24T14:30:00.5+02:00", "2024-11-24T12:30:00.500Z"),
    (["iso_datetime"], "2024-11-24T12:00:00", "2024-11-24T12:00:00.000Z"),
    (["iso_datetime"], "2024-11-24", "2024-11-24T00:00:00.000Z"),
    (["iso_datetime"], "0999-05-01T00:00:00Z", "0999-05-01T00:00:00.000Z"),
    (["iso_datetime"], "0001-01-01", "0001-01-01T00:00:00.000Z"),
    ([{"join": ";"}], ["a", None, "", "b", 3], "a;b;3"),
    ([{"join": ";"}], [], ""),
    ([{"join": ", "}], "single", "single"),
    ([{"truncate": 3}], "abcdef", "abc"),
    ([{"truncate": 3}], "ab", "ab"),
    (["lowercase", {"join": "|"}], ["A", "B"], "a|b"),
    ([{"value_map": {"gold": "Gold"}, "default": None}], "tin", None),
    ([{"value_map": {"gold": "Gold"}, "default": "keep"}], "tin", "tin"),
    ([{"value_map": {"gold": "Gold"}, "default": "Other"}], "tin", "Other"),
    ([{"value_map": {"1": "One", "true": "Yes"}}], 1, "One"),
    ([{"value_map": {"1": "One", "true": "Yes"}}], True, "Yes"),
    (["trim", "lowercase", {"round": 2}, {"join": ";"}], None, None),
])
def test_conversion_results(steps: list[Any], value: Any, expected: Any) -> None:
    assert convert(steps, value) == expected


@pytest.mark.parametrize(("steps", "value", "reason"), [
    (["trim"], 5, "trim needs text, got number 5; add 'string' before it"),
    (["number"], "12abc", "'12abc' is not a number"),
    (["number"], True, "true/false True is not a number"),
    (["integer"], "2.5", "'2.5' is not a whole number; add {round: 0} before it"),
    ([{"round": 2}], float("nan"), "round needs a finite number, got nan"),
    (["epoch_ms_to_datetime"], 10**20, "100000000000000000000 is not a time in epoch milliseconds"),
    (["iso_datetime"], "24/11/2024", "'24/11/2024' is not an ISO 8601 date or datetime"),
    (["iso_datetime"], "9999-12-31T23:30:00-01:00",
     "9999-12-31T23:30:00-01:00 is outside the years 1 to 9999 in UTC"),
    (["string"], {"a": 1}, "string needs a single value, got map {'a': 1}"),
    ([{"join": ";"}], [{"a": 1}], "join needs a list of single values, got map {'a': 1}"),
    ([{"value_map": {"gold": "Gold"}}], "tin",
     "value 'tin' is not in value_map ('gold') and no default"),
])
def test_conversion_rejects_bad_values(steps: list[Any], value: Any, reason: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        convert(steps, value)
    assert str(caught.value) == reason


def test_field_mapping_names_the_field_in_conversion_errors() -> None:
    mapping = FieldMapping("Score__c", "stats.score", (build_conversion("number"),))
    assert mapping.value({"stats": {"score": "7.5"}}) == 7.5
    with pytest.raises(ConversionError) as caught:
        mapping.value({"stats": {"score": "lots"}})
    assert (caught.value.field, caught.value.reason) == (
        "Score__c", "'lots' is not a number (source stats.score)",
    )


@pytest.mark.parametrize(("path", "record", "expected"), [
    ("a", {"a": 1}, 1),
    ("a.b.c", {"a": {"b": {"c": "x"}}}, "x"),
    ("a.b.c", {"a": {"b": "not a map"}}, None),
    ("a.b", {}, None),
    ("list[].name", {"list": [{"name": "x"}, {"other": 1}, {"name": "y"}]}, ["x", "y"]),
    ("list[].name", {"list": []}, []),
    ("list[].name", {"list": "oops"}, None),
    ("list[0].name", {"list": [{"name": "x"}, {"name": "y"}]}, "x"),
    ("list[5].name", {"list": [{"name": "x"}]}, None),
    ("a[].b[].c", {"a": [{"b": [{"c": 1}, {"c": 2}]}, {"b": [{"c": 3}]}]}, [1, 2, 3]),
    ("attributes.plan", {"attributes": {"plan": "gold"}}, "gold"),
    ("attributes.plan", {"attributes": [{"name": "plan", "value": "gold"}]}, "gold"),
    ("attributes.plan", {"attributes": [{"name": "industry", "value": "Retail"}]}, None),
    ("$type", {"$type": "t"}, "t"),
])
def test_source_paths_read_values(path: str, record: dict[str, Any], expected: Any) -> None:
    assert parse_path(path).read(record) == expected


@pytest.mark.parametrize(("path", "message"), [
    ("", "a source path cannot be empty"),
    ("a..b", "bad source path 'a..b': empty step (step 2)"),
    ("a[x]", "bad source path 'a[x]': step 'a[x]' (step 1)"),
    ("a b", "bad source path 'a b': step 'a b' (step 1)"),
    ("1abc", "bad source path '1abc': step '1abc' (step 1)"),
])
def test_bad_source_paths(path: str, message: str) -> None:
    with pytest.raises(PathError) as caught:
        parse_path(path)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(("name", "expected"), [
    ("ACME, Incorporated", "acme"),
    ("Acme Inc.", "acme"),
    ("Example Corp.", "example"),
    ("Example Corporation", "example"),
    ("Widgets L.L.C.", "widgets"),
    ("Müller GmbH", "müller"),
    ("Société Générale S.A.", "société générale"),
    ("Smith & Sons Co., Ltd", "smith sons"),
    ("  Big   Blue  ", "big blue"),
    ("O'Reilly Media", "oreilly media"),
    ("Co", "co"),
    ("Inc. Magazine", "inc magazine"),
])
def test_company_name_normaliser(name: str, expected: str) -> None:
    assert normalize_company_name(name) == expected


def test_email_normaliser_uses_nfc_and_ignores_case() -> None:
    decomposed = "Jose\u0301@Example.com "
    assert normalize_email(decomposed) == "jos\u00e9@example.com"
    assert normalize_email("jos\u00e9@example.com") == normalize_email(decomposed)


@pytest.mark.parametrize(("value", "names", "expected"), [
    (None, ["trim"], None),
    ("   ", ["trim"], None),
    ("", [], None),
    (1234, [], "1234"),
    (True, [], "true"),
    (["a"], [], None),
    (" X ", ["trim", "lowercase"], "x"),
])
def test_match_keys(value: Any, names: list[str], expected: str | None) -> None:
    assert apply_normalizers(value, names) == expected
