"""The Salesforce sandbox as one Flask app: OAuth, REST, SOAP query, Bulk 1.0 and 2.0, admin.

Data lives in `data_dir / "salesforce"`: the data store's `salesforce.db`, the HTTP
layer's `api.db` (ledger, Bulk jobs) and the JWT demo key pair.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from flask import Flask, Response, request

from emulators.salesforce import (
    admin,
    bulk,
    bulk2_ingest,
    bulk2_query,
    bulk_query,
    metadata,
    oauth,
    rest,
    soap,
)
from emulators.salesforce.apidb import ApiDatabase
from emulators.salesforce.bulk_jobs import BulkJobs
from emulators.salesforce.bulk_worker import BulkWorker
from emulators.salesforce.cursors import QueryCursors
from emulators.salesforce.faults import Faults
from emulators.salesforce.gateway import Gateway
from emulators.salesforce.jwt_keys import ensure_jwt_keys, load_trusted_key
from emulators.salesforce.ledger import Ledger
from emulators.salesforce.limits import ApiLimits
from emulators.salesforce.records import RelationshipTypes
from emulators.salesforce.sessions import Sessions
from emulators.salesforce.state import EXTENSION, SandboxState
from emulators.salesforce.store import SalesforceStore

# Large enough for a 10 MB Bulk batch; anything bigger is refused before it is read (a
# Bulk 2.0 upload raises it to 100 MB for its own request).
MAX_CONTENT_LENGTH = 16 * 1024 * 1024


class GatedFlask(Flask):
    """A Flask app whose WSGI entry passes through the `Gateway` (edge limits, faults)."""

    gateway: Gateway

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        return self.gateway(environ, start_response)


def create_app(data_dir: Path) -> Flask:
    folder = data_dir / "salesforce"
    folder.mkdir(parents=True, exist_ok=True)
    store = SalesforceStore(folder / "salesforce.db")
    db = ApiDatabase(folder / "api.db")
    faults = Faults()
    jobs = BulkJobs(db)
    state = SandboxState(
        folder=folder, store=store, db=db, ledger=Ledger(db), limits=ApiLimits(),
        sessions=Sessions(), faults=faults, cursors=QueryCursors(), jobs=jobs,
        worker=BulkWorker(jobs, store, faults), relationship_types=RelationshipTypes(store),
        jwt_key=load_trusted_key(ensure_jwt_keys(folder)),
    )

    app = GatedFlask("salesforce-sandbox")
    app.config["MAX_CONTENT_LENGTH"] = MAX_CONTENT_LENGTH
    app.extensions[EXTENSION] = state
    for module in (oauth, rest, soap, bulk, admin, metadata):
        app.register_blueprint(module.blueprint)

    @app.after_request
    def _limit_info(response: Response) -> Response:
        """Every API reply reports the allowance used, as `Sforce-Limit-Info`."""
        path = request.path
        if path.startswith("/services/") and not path.startswith("/services/oauth2/"):
            response.headers["Sforce-Limit-Info"] = state.limits.usage_header()
        return response

    app.gateway = Gateway(app.wsgi_app, state.ledger, faults)
    state.worker.start()
    bulk2_query.install(app, state)
    bulk2_ingest.install(app, state)
    bulk_query.install(app, state)
    return app
