"""Event API delivery: one `POST /api2/authevent/{dataset}` per user change, a few at a time.

Each change becomes one server-side, non-interactive event that touches no campaign, for the
user the identity check found (`user.id`), carrying the mapped attributes and the identity
values to store on that user. At most `event_concurrency` calls are in flight and at most
twice that many changes wait, so memory stays bounded; changes of the same user are sent one
after another in input order, so a later change never overtakes an earlier one. Retries
(busy errorCode 3, 429, 5xx, connection errors) happen inside
`PersonalizationClient.send_event`; other error codes come back as a rejected outcome.
Outcomes are handed back on the caller's thread, so reports and files need no locks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from tap_personalization.api import PersonalizationClient
from tap_personalization.errors import EventRejectedError
from tap_personalization.target.changes import UserChange

DEFAULT_ACTION = "CRM Sync"
DEFAULT_CONCURRENCY = 4
MAX_CONCURRENCY = 32


@dataclass(frozen=True)
class UserEvent:
    """One change for one known user: attribute values (None clears) and links to store."""

    change: UserChange
    user_id: str
    attributes: dict[str, Any]
    links: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class EventOutcome:
    """What the API answered for one event: a reply, or the rejection (code and message)."""

    event: UserEvent
    reply: dict[str, Any] | None = None
    rejection: EventRejectedError | None = None


def event_body(event: UserEvent, action: str = DEFAULT_ACTION) -> dict[str, Any]:
    """The documented event shape; an attribute value None clears it in Personalization."""
    return {
        "action": action,
        "source": {"channel": "Server"},
        "flags": {"noCampaigns": True, "nonInteractive": True},
        "user": {"id": event.user_id, "attributes": dict(event.attributes)},
    }


class EventSender:
    """Sends events on a small thread pool; every client is used by one thread only."""

    def __init__(
        self,
        make_client: Callable[[], PersonalizationClient],
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        action: str = DEFAULT_ACTION,
    ) -> None:
        self.make_client = make_client
        self.action = action
        self.max_waiting = 2 * concurrency
        self._executor = ThreadPoolExecutor(max_workers=concurrency,
                                            thread_name_prefix="personalization-event")
        self._pending: dict[Future[EventOutcome], str] = {}
        self._last_of_user: dict[str, Future[EventOutcome]] = {}
        self._local = threading.local()
        self._clients: list[PersonalizationClient] = []
        self._lock = threading.Lock()

    def submit(self, event: UserEvent) -> list[EventOutcome]:
        """Queue one event; returns the outcomes that completed meanwhile.

        Raises the fatal error of a failed call (auth, unavailable after retries, TLS).
        """
        earlier = self._last_of_user.get(event.user_id)
        if earlier is not None:
            wait([earlier])
        if len(self._pending) >= self.max_waiting:
            wait(self._pending, return_when=FIRST_COMPLETED)
        outcomes = self._reap()
        future = self._executor.submit(self._send, event)
        self._pending[future] = event.user_id
        self._last_of_user[event.user_id] = future
        return outcomes

    def finish(self) -> list[EventOutcome]:
        """Wait for every queued change; their outcomes."""
        wait(self._pending)
        return self._reap()

    def close(self) -> None:
        """Stop (queued changes not yet sent are dropped: only called when the run failed or
        after `finish`) and release the connections."""
        self._executor.shutdown(wait=True, cancel_futures=True)
        for client in self._clients:
            client.close()
        self._clients.clear()

    def _reap(self) -> list[EventOutcome]:
        outcomes = []
        for future in [f for f in self._pending if f.done()]:
            user_id = self._pending.pop(future)
            if self._last_of_user.get(user_id) is future:
                del self._last_of_user[user_id]
            outcomes.append(future.result())  # a fatal error is raised here
        return outcomes

    def _client(self) -> PersonalizationClient:
        client: PersonalizationClient | None = getattr(self._local, "client", None)
        if client is None:
            client = self.make_client()
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def _send(self, event: UserEvent) -> EventOutcome:
        try:
            reply = self._client().send_event(event_body(event, self.action))
        except EventRejectedError as rejection:
            return EventOutcome(event, rejection=rejection)
        return EventOutcome(event, reply=reply)
