"""Which values of a change Personalization does not hold yet: the rest is an echo, not sent.

The run's view of the fingerprint store (see `fingerprints`): one dataset (`scope`), the
`full_refresh` switch, and the settling of feed files earlier runs delivered, done once,
before the first comparison, by asking the destination where each file went.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from tap_personalization.target.fingerprints import FingerprintStore, value_hash

#: Where each delivered file went: name → processed | failed | waiting | missing.
FileOutcomes = Callable[[list[str]], dict[str, str]]
PROCESSED, FAILED, WAITING, MISSING = "processed", "failed", "waiting", "missing"


class UnchangedFilter:
    """Compares a change with what was last confirmed delivered, and records deliveries."""

    def __init__(
        self, store: FingerprintStore, *, scope: Callable[[], str], outcomes: FileOutcomes,
        full_refresh: bool, logger: logging.Logger,
    ) -> None:
        self.store = store
        self._scope = scope
        self._outcomes = outcomes
        self.full_refresh = full_refresh
        self.logger = logger
        #: Earlier runs' feed files by where this run found them (for the report).
        self.settled: Counter[str] = Counter()
        self._scope_value: str | None = None
        self._holds_any = True  # until the store says otherwise

    @property
    def scope(self) -> str:
        """Settles earlier runs' files on first use (one look at the destination)."""
        if self._scope_value is None:
            self._scope_value = self._scope()
            self._settle(self._scope_value)
            # A first sync skips the per-record look-ups (at worst it sends a value twice
            # that two records of this run carry; never less).
            self._holds_any = self.store.holds(self._scope_value)
        return self._scope_value

    def _settle(self, scope: str) -> None:
        if self.store.readonly:  # a dry run records nothing, so it need not look
            return
        files = self.store.awaiting_files(scope)
        if not files:
            return
        found = self._outcomes(files)
        processed = [name for name in files if found.get(name) == PROCESSED]
        dropped = [name for name in files if found.get(name) in (FAILED, MISSING)]
        self.store.settle(scope, processed, dropped)
        self.settled.update(found.get(name, MISSING) for name in files)
        self.logger.info(
            "Earlier feed files: %d processed (their values count as delivered), %d failed "
            "or gone (sent again), %d not processed yet (sent again).", len(processed),
            len(dropped), len(files) - len(processed) - len(dropped))

    def changed(self, kind: str, entity: str, values: Mapping[str, Any]) -> dict[str, Any]:
        """The values that differ from the last confirmed delivery (all of them on
        `full_refresh`, or when nothing was confirmed)."""
        if self.full_refresh or not values:
            return dict(values)
        scope = self.scope
        if not self._holds_any:
            return dict(values)
        known = self.store.lookup(scope, kind, entity)
        if not known:
            return dict(values)
        return {name: value for name, value in values.items()
                if known.get(name) != value_hash(value)}

    def confirmed(self, kind: str, entity: str, values: Mapping[str, Any]) -> None:
        """Values the API accepted (an event answered errorCode 0)."""
        self.store.confirm(self.scope, kind, entity, _hashes(values))

    def staged(self, part: str, kind: str, entity: str, values: Mapping[str, Any]) -> None:
        """Values written into a feed file that is not delivered yet."""
        self.store.stage(part, kind, entity, _hashes(values))

    def delivered(self, files: Iterable[tuple[str, str]]) -> None:
        """Feed files now under their final name: (temporary path, final name)."""
        self.store.delivered(self.scope, files)

    def commit(self) -> None:
        self.store.commit()

    def close(self) -> None:
        self.store.close()


def _hashes(values: Mapping[str, Any]) -> dict[str, str]:
    return {name: value_hash(value) for name, value in values.items()}
