"""The emulated dataset's live state, shared by every blueprint of one app instance."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flask import current_app

from emulators.personalization.faults import Faults, FaultSettings
from emulators.personalization.inbound import Inbound
from emulators.personalization.ledger import Ledger
from emulators.personalization.store import PersonalizationStore

EXTENSION = "personalization_sandbox"


@dataclass
class SandboxState:
    folder: Path
    store: PersonalizationStore
    ledger: Ledger
    faults: Faults
    inbound: Inbound

    def reset(self) -> None:
        """Back to an empty dataset: data, ledger, faults, feed folders and results."""
        with self.inbound.lock:
            self.inbound.clear_folders()
            self.store.reset()
        self.ledger.clear()
        self.faults.configure(FaultSettings())


def current() -> SandboxState:
    state: SandboxState = current_app.extensions[EXTENSION]
    return state
