"""docs/bad-inputs.md stays true: every test its tables name exists.

Each row of the table names the test that shows the behaviour. Renaming or deleting such a
test without updating the row fails here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "bad-inputs.md"
NAMED = re.compile(r"`(tests/[\w/]+\.py)::(test_\w+)`")


def test_every_test_the_table_names_exists() -> None:
    named = NAMED.findall(DOC.read_text(encoding="utf-8"))
    assert len(named) >= 25
    for path, name in named:
        tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
        functions = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
        assert name in functions, f"docs/bad-inputs.md names {path}::{name}, which is gone"


def test_every_table_row_names_a_test_or_points_above() -> None:
    rows = [line for line in DOC.read_text(encoding="utf-8").splitlines()
            if line.startswith("| ") and not line.startswith(("| Input", "| Fault"))]
    for row in rows:
        test_cell = row.rstrip(" |").rsplit("|", 1)[-1]
        assert NAMED.search(test_cell) or test_cell.strip().startswith("same"), row
