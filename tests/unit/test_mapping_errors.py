"""Broken mapping files are refused with every problem, each at its file:line:column.

Each fixture under tests/fixtures/mappings/broken/ states what it expects in
`# expect: LINE:COLUMN message` comments; the loader must report exactly those problems.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from crm_sync_mapping import (
    MappingError,
    Problem,
    load_forward_mapping,
    load_mapping,
    load_reverse_mapping,
)

MAPPINGS = Path(__file__).resolve().parents[1] / "fixtures" / "mappings"
BROKEN = sorted((MAPPINGS / "broken").glob("*.yml"))
DEFAULTS = Path(__file__).resolve().parents[2] / "transforms"
EXPECT = re.compile(r"^# expect: (\d+):(\d+) (.+)$", re.MULTILINE)


def test_there_are_enough_broken_fixtures() -> None:
    assert len(BROKEN) >= 10


@pytest.mark.parametrize("path", BROKEN, ids=lambda path: path.stem)
def test_broken_file_is_refused_with_expected_problems(path: Path) -> None:
    expected = EXPECT.findall(path.read_text(encoding="utf-8"))
    assert expected, f"{path.name} has no '# expect:' line"

    with pytest.raises(MappingError) as caught:
        load_mapping(path)

    problems = caught.value.problems
    assert len(problems) == len(expected), str(caught.value)
    for line, column, message in expected:
        hits = [
            problem for problem in problems
            if (problem.line, problem.column) == (int(line), int(column))
            and message in problem.message
        ]
        assert hits, f"expected {line}:{column} {message!r}, got:\n{caught.value}"
        assert all(problem.file == str(path) for problem in hits)


def test_error_text_is_one_line_per_problem_with_file_line_column() -> None:
    path = MAPPINGS / "broken" / "many_problems.yml"
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    lines = str(caught.value).splitlines()
    assert len(lines) == len(caught.value.problems) == 5
    assert lines[0] == (
        f"{path}:10:16: defaults.null_policy must be one of skip, clear, got 'never'"
    )
    assert all(re.match(rf"^{re.escape(str(path))}:\d+:\d+: \S", line) for line in lines)
    line_numbers = [problem.line for problem in caught.value.problems]
    assert line_numbers == sorted(line_numbers)


def test_mapping_error_is_a_value_error_with_problem_records() -> None:
    error = MappingError([Problem("m.yml", 3, 7, "b"), Problem("m.yml", 1, 1, "a")])
    assert isinstance(error, ValueError)
    assert str(error) == "m.yml:1:1: a\nm.yml:3:7: b"


def test_missing_file_names_the_file() -> None:
    path = MAPPINGS / "does-not-exist.yml"
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    assert str(caught.value) == f"{path}: cannot read the mapping file: No such file or directory"


def test_forward_loader_refuses_a_reverse_file_at_its_direction_line() -> None:
    path = DEFAULTS / "crm-to-personalization.yml"
    with pytest.raises(MappingError) as caught:
        load_forward_mapping(path)
    (problem,) = caught.value.problems
    assert (problem.line, problem.column) == (6, 12)
    assert problem.message.startswith(
        "this file is direction crm-to-personalization, but a personalization-to-crm"
    )
    assert "mapping_file" in problem.message


def test_reverse_loader_refuses_a_forward_file() -> None:
    with pytest.raises(MappingError, match="direction personalization-to-crm"):
        load_reverse_mapping(DEFAULTS / "personalization-to-crm.yml")


def test_a_top_level_list_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "list.yml"
    path.write_text("- version: 1\n", encoding="utf-8")
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    assert str(caught.value) == f"{path}:1:1: the top level must be a map (key: value), got a list"
