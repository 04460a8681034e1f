"""The house rules of the tree, read from the source: imports go one way and never in a circle.

Every `import` and `from … import` counts, also those under `if TYPE_CHECKING:` and inside
functions: an arrow a reader must follow is an arrow, whether or not it runs at start-up.
Importing `a.b.c` is counted as an arrow to `a.b.c` alone (not to the packages around it).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "target_salesforce_crm": ROOT / "target-salesforce-crm" / "target_salesforce_crm",
    "tap_personalization": ROOT / "tap-personalization" / "tap_personalization",
    "crm_sync_mapping": ROOT / "transforms" / "crm_sync_mapping",
    "emulators": ROOT / "sandbox" / "emulators",
}
CONNECTORS = ("target_salesforce_crm", "tap_personalization")
PLUGIN_FOLDERS = ("tap", "target")


def module_names() -> dict[str, Path]:
    names: dict[str, Path] = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            names[".".join(parts)] = path
    return names


MODULES = module_names()


def _resolve(name: str) -> str | None:
    """The project module an import names, or None for a library."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str) -> Iterator[str]:
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}".rstrip(".")
            # `from pkg import mod` names the module `pkg.mod` when there is one
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                       for alias in node.names]
        else:
            continue
        for target in targets:
            resolved = _resolve(target)
            if resolved is not None and resolved != module:
                yield resolved


GRAPH = {module: sorted(set(imports_of(module))) for module in MODULES}


def cycles() -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for follower in GRAPH[node]:
            if follower not in index:
                visit(follower)
                low[node] = min(low[node], low[follower])
            elif follower in on_stack:
                low[node] = min(low[node], index[follower])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    return found


def plugin_of(module: str) -> str | None:
    """`tap` or `target` for a module of a connector's plugin folder, None for shared code."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in PLUGIN_FOLDERS else None


def test_the_project_modules_are_found() -> None:
    for package in CONNECTORS:
        for folder in PLUGIN_FOLDERS:
            assert f"{package}.{folder}.{folder}" in MODULES  # the plugin class's module
    assert "target_salesforce_crm.target.sinks" in GRAPH["target_salesforce_crm.target.target"]


def test_no_import_circles() -> None:
    assert cycles() == []


def test_the_cycle_finder_sees_a_circle() -> None:
    GRAPH["crm_sync_mapping"] = [*GRAPH["crm_sync_mapping"], "target_salesforce_crm"]
    GRAPH["target_salesforce_crm"] = [*GRAPH["target_salesforce_crm"], "crm_sync_mapping"]
    try:
        assert ["crm_sync_mapping", "target_salesforce_crm"] in cycles()
    finally:
        GRAPH["crm_sync_mapping"] = sorted(set(imports_of("crm_sync_mapping")))
        GRAPH["target_salesforce_crm"] = sorted(set(imports_of("target_salesforce_crm")))


@pytest.mark.parametrize("package", CONNECTORS)
def test_a_plugin_never_imports_the_other_plugin_and_shared_code_imports_neither(
        package: str) -> None:
    """`metadata.py` reads what the tap reads of the CRM, so it may use the tap's constants."""
    wrong = []
    for module, followers in GRAPH.items():
        if not module.startswith(f"{package}."):
            continue
        home = plugin_of(module)
        for follower in followers:
            other = plugin_of(follower)
            if other is None or other == home:
                continue
            if module == "target_salesforce_crm.metadata" and other == "tap":
                continue
            wrong.append(f"{module} -> {follower}")
    assert wrong == []


def test_the_rooms_only_reach_down() -> None:
    """Emulators and plugins never import each other; the mapping library imports neither."""
    wrong = [
        f"{module} -> {follower}"
        for module, followers in GRAPH.items()
        for follower in followers
        if (module.startswith("emulators") and not follower.startswith("emulators"))
        or (module.startswith("crm_sync_mapping") and not follower.startswith("crm_sync_mapping"))
        or (module.startswith(CONNECTORS) and follower.startswith("emulators"))
        or (module.startswith("target_salesforce_crm") and follower.startswith("tap_pers"))
        or (module.startswith("tap_personalization") and follower.startswith("target_sales"))
    ]
    assert wrong == []
