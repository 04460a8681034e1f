"""The emulated org's live state, shared by every blueprint of one app instance."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from flask import current_app

from emulators.salesforce.apidb import ApiDatabase
from emulators.salesforce.faults import Faults
from emulators.salesforce.ledger import Ledger
from emulators.salesforce.limits import ApiLimits
from emulators.salesforce.records import RelationshipTypes
from emulators.salesforce.sessions import Sessions

if TYPE_CHECKING:
    from emulators.salesforce.bulk_jobs import BulkJobs
    from emulators.salesforce.bulk_worker import BulkWorker
    from emulators.salesforce.cursors import QueryCursors
    from emulators.salesforce.store import SalesforceStore

EXTENSION = "salesforce_sandbox"


@dataclass
class SandboxState:
    folder: Path
    store: SalesforceStore
    db: ApiDatabase
    ledger: Ledger
    limits: ApiLimits
    sessions: Sessions
    faults: Faults
    cursors: QueryCursors
    jobs: BulkJobs
    worker: BulkWorker
    relationship_types: RelationshipTypes
    jwt_key: RSAPublicKey

    def reset(self) -> None:
        """Back to an empty org: data, API records, limits, faults, revocation, cursors."""
        self.store.reset()
        self.db.clear()
        self.limits.reset()
        self.faults.configure(type(self.faults.settings)())
        self.sessions.revoke(None)
        self.cursors.clear()
        self.relationship_types.clear()


def current() -> SandboxState:
    state: SandboxState = current_app.extensions[EXTENSION]
    return state
