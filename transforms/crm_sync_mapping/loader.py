"""Load a mapping file: read → schema check → semantic checks → model.

Every stage adds to one list of problems, and the file is refused with all of them at
once, each with file, line and column, so an analytics engineer fixes a file in one pass.
"""

from __future__ import annotations

from pathlib import Path

from crm_sync_mapping.build import build_forward, build_reverse
from crm_sync_mapping.document import Document, read_document
from crm_sync_mapping.model import ForwardMapping, ReverseMapping
from crm_sync_mapping.problems import MappingError, Problem
from crm_sync_mapping.schema_check import check_schema
from crm_sync_mapping.semantics import check_semantics

FORWARD = "personalization-to-crm"
REVERSE = "crm-to-personalization"


def check_text(text: str, file: str) -> Document:
    """Every problem of a mapping given as text (no model is built)."""
    document = read_document(text, file)
    if document.problems and document.data is None:
        return document  # a syntax error: nothing more can be said
    if document.data is None:
        document.problem((1, 1), (
            "the file is empty; it must start with 'version: 1' and 'direction: "
            f"{FORWARD}' or '{REVERSE}'"
        ))
        return document
    check_schema(document)
    check_semantics(document)
    return document


def load_mapping(path: str | Path) -> ForwardMapping | ReverseMapping:
    """Load either direction, chosen by the file's `direction`; MappingError lists every problem."""
    path = Path(path)
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        problem = Problem(file, 0, 0, f"cannot read the mapping file: {reason}")
        raise MappingError([problem]) from None
    document = check_text(text, file)
    if document.problems:
        raise MappingError(document.problems)
    if document.data["direction"] == FORWARD:
        return build_forward(path, document.data)
    return build_reverse(path, document.data)


def _expect(path: str | Path, direction: str) -> ForwardMapping | ReverseMapping:
    mapping = load_mapping(path)
    actual = FORWARD if isinstance(mapping, ForwardMapping) else REVERSE
    if actual != direction:
        document = read_document(Path(path).read_text(encoding="utf-8"), str(path))
        line, column = document.value_at(("direction",))
        raise MappingError([Problem(str(path), line, column, (
            f"this file is direction {actual}, but a {direction} mapping is needed here: "
            "check the mapping_file setting"
        ))])
    return mapping


def locate(path: str | Path, keys: tuple[str | int, ...]) -> Problem:
    """Where a key of a loaded file is written, as a message-less Problem (file:line:column).

    Tools working from the model (such as the metadata generator) use it to point at the
    line to change; a key that is not in the file points at its nearest written parent.
    """
    file = str(path)
    document = read_document(Path(path).read_text(encoding="utf-8"), file)
    line, column = document.key_at(tuple(keys))
    return Problem(file, line, column, "")


def load_forward_mapping(path: str | Path) -> ForwardMapping:
    """Load a personalization-to-crm file (the CRM target's mapping_file)."""
    mapping = _expect(path, FORWARD)
    assert isinstance(mapping, ForwardMapping)
    return mapping


def load_reverse_mapping(path: str | Path) -> ReverseMapping:
    """Load a crm-to-personalization file (tap-salesforce-crm's and target-personalization's)."""
    mapping = _expect(path, REVERSE)
    assert isinstance(mapping, ReverseMapping)
    return mapping
