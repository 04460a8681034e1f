"""What every benchmark path of one size shares: data, servers, stream, scratch space."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.dataset import Seeded, StreamFile
from harness.sandbox import Sandboxes, Server


@dataclass(frozen=True)
class Context:
    seeded: Seeded
    data_dir: Path
    scratch: Path
    servers: Sandboxes
    stream: StreamFile | None  # only built when the target path runs
    repeat: int

    @property
    def users_stream(self) -> StreamFile:
        if self.stream is None:
            raise RuntimeError("the users stream was not built for this run")
        return self.stream

    @property
    def salesforce(self) -> Server:
        return self.servers["salesforce"]

    @property
    def personalization(self) -> Server:
        return self.servers["personalization"]
