"""Build hook: this distribution carries the mapping library it was tested with.

The library's one source is `transforms/crm_sync_mapping` in the repository (not on any
index, see docs/architecture.md, "Packaging"). A wheel or sdist built from the repository
(a path, a `git+…#subdirectory=` URL, `make dist`) copies it to `<package>/_vendor/`;
the package's `__init__` puts that folder first on `sys.path`. A wheel built from our own
sdist finds the copy already inside the package. Editable installs get nothing: the
development environment installs `transforms/` itself (`-e ./transforms`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class VendorMappingLibrary(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if version == "editable":
            return
        library = (Path(self.root) / self.config["library"]).resolve()
        if not library.is_dir():  # building from our sdist: the copy is already inside
            return
        for source in sorted(library.rglob("*")):
            if source.is_file() and "__pycache__" not in source.parts:
                relative = source.relative_to(library).as_posix()
                build_data["force_include"][str(source)] = f"{self.config['into']}/{relative}"
