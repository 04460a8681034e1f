"""The example mapping files, shipped inside every distribution that carries this library.

A user's Meltano project has no copy of this repository, so the plugins' default
`mapping_file` (`transforms/<direction>.yml`) would not exist; `write_examples` puts the two
files there, with the JSON Schema their first line points editors at. The packaged files are
byte-for-byte the repository's `transforms/*.yml` (a test keeps them so); only the schema
line is rewritten to the schema written beside them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

FORWARD = "personalization-to-crm.yml"
REVERSE = "crm-to-personalization.yml"
SCHEMA = "mapping.schema.json"
_PACKAGED_SCHEMA_LINE = "# yaml-language-server: $schema=./crm_sync_mapping/mapping.schema.json"
_WRITTEN_SCHEMA_LINE = f"# yaml-language-server: $schema=./{SCHEMA}"
DEFAULT_DIRECTORY = "transforms"


def example_text(name: str) -> str:
    """A packaged example mapping, as shipped."""
    return resources.files(__package__).joinpath("examples", name).read_text("utf-8")


def write_examples(directory: Path, *, overwrite: bool = False) -> list[Path]:
    """Both example mappings and the schema into `directory`; nothing is replaced unasked."""
    files = {
        FORWARD: example_text(FORWARD).replace(_PACKAGED_SCHEMA_LINE, _WRITTEN_SCHEMA_LINE, 1),
        REVERSE: example_text(REVERSE).replace(_PACKAGED_SCHEMA_LINE, _WRITTEN_SCHEMA_LINE, 1),
        SCHEMA: resources.files(__package__).joinpath(SCHEMA).read_text("utf-8"),
    }
    existing = [directory / name for name in files if (directory / name).exists()]
    if existing and not overwrite:
        names = ", ".join(str(path) for path in existing)
        raise FileExistsError(f"not replacing {names} (your edits); pass --force to "
                              "overwrite them with the examples")
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
        written.append(directory / name)
    return written


def main(argv: Sequence[str] | None = None, *, prog: str) -> int:
    """`<prog> init [DIR] [--force]`; the distributions name the command (`prog`)."""
    parser = argparse.ArgumentParser(prog=prog, description=(
        "Write the example mapping files (and their JSON Schema) into a Meltano project."))
    commands = parser.add_subparsers(dest="command", required=True)
    init = commands.add_parser("init", help="write the examples into DIR (default: transforms)")
    init.add_argument("directory", nargs="?", default=DEFAULT_DIRECTORY, type=Path,
                      metavar="DIR")
    init.add_argument("--force", action="store_true", help="replace files that exist")
    args = parser.parse_args(argv)
    try:
        written = write_examples(args.directory, overwrite=args.force)
    except (FileExistsError, OSError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    print(f"target-salesforce-crm reads {args.directory / FORWARD}; tap-salesforce-crm and "
          f"target-personalization read {args.directory / REVERSE} (setting mapping_file).")
    return 0
