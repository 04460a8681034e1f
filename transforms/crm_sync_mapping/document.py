"""Read a mapping file into plain Python data that remembers where each value was written.

Every later check reports "file:line:column", so the YAML is read in ruamel.yaml's
round-trip mode (which records the position of every key and item) and converted to
plain dicts, lists and scalars plus a table of positions keyed by the path of each value.
Syntax errors and duplicate keys (which plain YAML loaders silently collapse) are
problems here, and so are aliases that expand without bound: YAML composes an alias as a
reference, so a few hundred bytes of nested aliases (a "billion laughs" file) mean billions
of values once walked, and an anchor used inside itself never ends. The composed graph is
measured before anything walks it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.scalarbool import ScalarBoolean

from crm_sync_mapping.conversions import map_key
from crm_sync_mapping.problems import Problem

Path_ = tuple[str | int, ...]
Position = tuple[int, int]

# A real mapping file holds a few hundred values and nests a handful of levels.
MAX_EXPANDED_VALUES = 100_000
MAX_DEPTH = 64


@dataclass
class Document:
    """A parsed file: its data (None when unreadable), positions and reading problems."""

    file: str
    data: Any = None
    problems: list[Problem] = field(default_factory=list)
    key_positions: dict[Path_, Position] = field(default_factory=dict)
    value_positions: dict[Path_, Position] = field(default_factory=dict)

    def key_at(self, path: Path_) -> Position:
        """Where the key (or list item) holding this path starts: for "missing"/"unknown"."""
        while path and path not in self.key_positions:
            path = path[:-1]
        return self.key_positions.get(path, (1, 1))

    def value_at(self, path: Path_) -> Position:
        """Where this path's value starts: for "wrong value" problems."""
        while path and path not in self.value_positions:
            path = path[:-1]
        return self.value_positions.get(path, (1, 1))

    def problem(self, at: Position, message: str) -> None:
        """Record a problem at a position."""
        self.problems.append(Problem(self.file, at[0], at[1], message))


def describe_path(path: Path_) -> str:
    """A path as people read it: objects.Contact.match[1].source."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "the top level"


def read_document(text: str, file: str) -> Document:
    """Parse YAML text; problems cover syntax, duplicate keys and keys that are not text."""
    document = Document(file)
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = True
    try:
        node = yaml.compose(text)
        if node is not None and not _bounded(node, document):
            return document
        data = yaml.load(text)
    except MarkedYAMLError as error:
        document.problem(_mark(error), _syntax_message(error))
        return document
    except YAMLError as error:
        document.problem((1, 1), f"YAML syntax error: {error}")
        return document
    if node is not None:
        _find_duplicates(node, (), document)
    document.key_positions[()] = (1, 1)
    document.value_positions[()] = (1, 1)
    document.data = _plain(data, (), document)
    return document


def _bounded(root: Node, document: Document) -> bool:
    """Whether the document stays small once its aliases are expanded (else a problem).

    Counts every value as a walk would meet it (a node reached again is an alias), without
    walking more than the limit: a 400-byte alias bomb is refused in microseconds.
    """
    count = 0
    seen: set[int] = set()
    first_alias: Node | None = None
    stack: list[tuple[Node, int, frozenset[int]]] = [(root, 1, frozenset())]
    while stack:
        node, depth, inside = stack.pop()
        if id(node) in inside:
            document.problem(_at(node), "an anchor is used inside itself (a YAML alias "
                             "to its own value): the value never ends; write it out instead")
            return False
        if id(node) in seen and first_alias is None:
            first_alias = node
        seen.add(id(node))
        count += 1
        if count > MAX_EXPANDED_VALUES or depth > MAX_DEPTH:
            culprit = first_alias or node
            limit = (f"more than {MAX_EXPANDED_VALUES:,} values" if count > MAX_EXPANDED_VALUES
                     else f"more than {MAX_DEPTH} levels")
            document.problem(_at(culprit), (
                f"YAML aliases expand this file to {limit} (first repeated anchor here); a "
                "mapping file needs far fewer: write the values out or use fewer aliases"))
            return False
        children: list[Node] = []
        if isinstance(node, MappingNode):
            children = [child for pair in node.value for child in pair]
        elif isinstance(node, SequenceNode):
            children = list(node.value)
        if children:
            path = inside | {id(node)}
            stack.extend((child, depth + 1, path) for child in children)
    return True


def _at(node: Node) -> Position:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


def _mark(error: MarkedYAMLError) -> Position:
    mark = error.problem_mark or error.context_mark
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


def _syntax_message(error: MarkedYAMLError) -> str:
    message = f"YAML syntax error: {error.problem or error.context}"
    if error.context and error.problem and error.context_mark is not None:
        message += f" ({error.context} at line {error.context_mark.line + 1})"
    return message


def _find_duplicates(node: Node, path: Path_, document: Document) -> None:
    if isinstance(node, MappingNode):
        seen: dict[str, Position] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.value == "<<":
                continue
            key = key_node.value
            at = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if key in seen:
                document.problem(at, (
                    f"duplicate key '{key}' under {describe_path(path)} (first at "
                    f"{seen[key][0]}:{seen[key][1]}); YAML would keep only one: merge or remove one"
                ))
            else:
                seen[key] = at
            _find_duplicates(value_node, (*path, key), document)
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            _find_duplicates(item, (*path, index), document)


def _plain(value: Any, path: Path_, document: Document) -> Any:
    """Plain data (dict/list/str/int/float/bool/None) and the positions of each entry."""
    if isinstance(value, dict):
        result: dict[str, Any] = {}
        for key, item in value.items():
            key_at = _position(value.lc.key, key, document.key_at(path))
            name = _key_text(key, path, key_at, document)
            if name is None or name in result:
                continue
            child = (*path, name)
            document.key_positions[child] = key_at
            document.value_positions[child] = _position(value.lc.value, key, key_at)
            result[name] = _plain(item, child, document)
        return result
    if isinstance(value, list):
        items = []
        for index, item in enumerate(value):
            child = (*path, index)
            at = _position(value.lc.item, index, document.value_at(path))
            document.key_positions[child] = at
            document.value_positions[child] = at
            items.append(_plain(item, child, document))
        return items
    return _scalar(value)


def _scalar(value: Any) -> Any:
    if isinstance(value, ScalarBoolean | bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()  # an unquoted date is meant as text here
    return value


def _key_text(key: Any, path: Path_, at: Position, document: Document) -> str | None:
    if isinstance(key, str):
        return str(key)
    if key is None:
        hint = " (the per-field setting is null_policy)" if "fields" in path else ""
        document.problem(at, (
            f"key 'null' under {describe_path(path)} is YAML's empty value, not a name"
            f"{hint}; quote it if you mean the text"
        ))
        return None
    if isinstance(key, bool | int | float | ScalarBoolean):
        return map_key(_scalar(key))
    document.problem(at, f"key under {describe_path(path)} must be a name, got {key!r}")
    return None


def _position(lookup: Any, key: Any, fallback: Position) -> Position:
    try:
        line, column = lookup(key)
    except (KeyError, IndexError, TypeError):
        return fallback  # keys brought in by a YAML merge (<<) have no own position
    return (line + 1, column + 1)
