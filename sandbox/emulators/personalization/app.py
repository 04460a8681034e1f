"""The Marketing Cloud Personalization emulator as a Flask app (served over TLS by server.py).

Wire facts follow /work/shared/reference/personalization-api.md; where the docs are silent,
each module documents the strict reading it chose (auth.py, exports.py, events.py,
attributes.py, mutations.py, feeds.py, inbound.py, faults.py, ledger.py, shapes.py).
Faults are applied before authentication, as a gateway in front of the API would.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask, Response, g, jsonify, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException

from emulators.personalization import admin, events, exports
from emulators.personalization.faults import Faults
from emulators.personalization.inbound import Inbound
from emulators.personalization.ledger import LEDGER_FILE, Ledger, classify
from emulators.personalization.state import EXTENSION, SandboxState
from emulators.personalization.store import DB_FILE, PersonalizationStore


class _InOrderJson(DefaultJSONProvider):
    """Keys in the order the code builds them, as the real API's objects read."""

    sort_keys = False
    ensure_ascii = False


def create_app(data_dir: Path) -> Flask:
    folder = data_dir / "personalization"
    store = PersonalizationStore(folder / DB_FILE)
    ledger = Ledger(folder / LEDGER_FILE)
    faults = Faults()
    inbound = Inbound(folder, store, ledger)
    state = SandboxState(folder, store, ledger, faults, inbound)

    app = Flask("personalization-sandbox")
    app.json = _InOrderJson(app)
    app.extensions[EXTENSION] = state
    app.register_blueprint(admin.bp)
    app.register_blueprint(exports.bp)
    app.register_blueprint(events.bp)

    @app.before_request
    def inject_faults() -> Response | None:
        g.ledger_kind = classify(request.path)
        if g.ledger_kind is None:
            return None
        fault = faults.http_fault()
        if fault == 429:
            answer = jsonify({"error": "Too Many Requests",
                              "message": "rate limit exceeded; retry after the delay given"})
            answer.status_code = 429
            answer.headers["Retry-After"] = str(faults.settings.retry_after)
            return answer
        if fault == 503:
            answer = jsonify({"error": "Service Unavailable",
                              "message": "temporarily unavailable; retry later"})
            answer.status_code = 503
            return answer
        return None

    @app.after_request
    def record_call(response: Response) -> Response:
        kind = g.get("ledger_kind")
        if kind is not None:
            ledger.record(kind, request.method, request.full_path.rstrip("?"),
                          response.status_code)
        return response

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        answer = jsonify({"error": error.name, "message": error.description})
        answer.status_code = error.code or 500
        return answer

    inbound.start()
    return app
