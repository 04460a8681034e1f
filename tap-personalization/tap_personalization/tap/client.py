"""The base stream of tap-personalization: singer-sdk's `RESTStream` with the shared rules.

The streams plug the Personalization client's rules into singer-sdk's hooks
(`validate_response` from `api`, `backoff_wait_generator`, `backoff_max_tries` and
`request_decorator` from `retry`, auth from `auth`, base URL and TLS from `settings`), so a
stream's request follows exactly the rules of `PersonalizationClient`'s single calls.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, TypeVar

import requests
from singer_sdk.authenticators import BasicAuthenticator
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.pagination import BaseAPIPaginator, PageNumberPaginator
from singer_sdk.singerlib import RecordMessage, SelectionMask
from singer_sdk.streams import RESTStream

from tap_personalization.api import check_response, export_page_rows, export_path
from tap_personalization.auth import CAN_ACCESS_API, token_authenticator
from tap_personalization.errors import PersonalizationRequestError, request_label
from tap_personalization.retry import log_retry, retry_waits, with_retries
from tap_personalization.settings import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_PAGE_SIZE,
    DEFAULT_REQUEST_TIMEOUT,
    base_url_from_config,
    tls_verify,
)
from tap_personalization.tap.prefetch import Prefetch

_T = TypeVar("_T")


class PersonalizationStream(RESTStream[int]):
    """Base of the export streams: Basic auth, CA bundle, page numbers from 0, shared retries."""

    #: `users` or `accounts`: which export this stream pages through.
    export: str = "users"
    #: Records leave `schemas.py` already typed as the schema says (dates, numbers, maps), so
    #: the SDK's recursive re-conforming of every nested value is wasted work (benchmarked).
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.ROOT_ONLY

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # `Session.send` (what the SDK calls) takes `verify` from the session.
        self.requests_session.verify = tls_verify(self.config)
        self._checked_mask: SelectionMask | None = None
        self._records_as_built = False
        #: Code points of invalid text replaced with U+FFFD so far (each one logged).
        self.invalid_text_replaced = 0

    @property
    def url_base(self) -> str:
        return base_url_from_config(self.config)

    @property
    def dataset(self) -> str:
        return str(self.config["dataset"])

    @property
    def path(self) -> str:
        return export_path(self.dataset, self.export)

    def get_url(self, context: Mapping[str, Any] | None) -> str:
        return f"{self.url_base}{self.path}"

    @cached_property
    def authenticator(self) -> BasicAuthenticator:
        return token_authenticator(self.config)

    @property
    def timeout(self) -> int:
        return int(self.config.get("request_timeout") or DEFAULT_REQUEST_TIMEOUT)

    @property
    def page_size(self) -> int:
        return int(self.config.get("page_size") or DEFAULT_PAGE_SIZE)

    def get_new_paginator(self) -> BaseAPIPaginator[int]:
        # Pages count from 0; the SDK stops at the first empty page, as the API documents.
        return PageNumberPaginator(0)

    def get_url_params(
        self,
        context: Mapping[str, Any] | None,
        next_page_token: int | None,
    ) -> dict[str, Any]:
        return {"page": next_page_token or 0, "pageSize": self.page_size}

    def validate_response(self, response: requests.Response) -> None:
        check_response(response, dataset=self.dataset, capability=CAN_ACCESS_API)

    def request_records(self, context: Mapping[str, Any] | None) -> Iterable[dict[str, Any]]:
        """Every record of the export, with the next page already on its way.

        Page n+1 is asked for as soon as page n came back with rows, in a background thread,
        while page n's records are written: the server's time overlaps the tap's. Exactly
        one request is in flight at a time and at most one page is held ahead, so memory
        stays flat. The export ends at the first page without rows, as the API documents;
        nothing is requested after it.
        """
        paginator = self.get_new_paginator()
        with self.get_http_request_counter() as request_counter:
            request_counter.with_context(context)
            request = self._prepare_request(context=context, page=paginator)
            ahead = self._start(request, context)
            try:
                while True:
                    response = self._response(ahead, request, context)
                    request_counter.increment()
                    self.update_sync_costs(request, response, context)
                    rows = self.page_rows(response)
                    if not rows:
                        self.logger.info(
                            "%s: export ended at its empty page %s",
                            self.name,
                            paginator.current_value,
                        )
                        return
                    paginator.advance(response)
                    request = self._prepare_request(context=context, page=paginator)
                    ahead = self._start(request, context)
                    yield from self.parse_rows(rows, response)
            finally:
                ahead.wait()

    def _start(
        self, request: requests.PreparedRequest, context: Mapping[str, Any] | None
    ) -> Prefetch[requests.Response]:
        """The first attempt at a page, in the background (retries happen in `_response`)."""
        return Prefetch(
            functools.partial(self._request, request, context), name=f"{self.name}-next-page"
        )

    def _response(
        self,
        ahead: Prefetch[requests.Response],
        request: requests.PreparedRequest,
        context: Mapping[str, Any] | None,
    ) -> requests.Response:
        """The page's response under the usual retry rules, the background attempt counting
        as the first try: its failure is logged, waited on and retried like any other, here
        in the consuming thread."""
        started = [ahead]

        def attempt(
            prepared: requests.PreparedRequest, context: Mapping[str, Any] | None
        ) -> requests.Response:
            if started:
                return started.pop().result()
            return self._request(prepared, context)

        return self.request_decorator(attempt)(request, context)

    def parse_response(self, response: requests.Response) -> Iterable[dict[str, Any]]:
        return self.parse_rows(self.page_rows(response), response)

    def page_rows(self, response: requests.Response) -> list[dict[str, Any]]:
        """The rows of one page, each an object; an empty list ends the export."""
        repaired: dict[str, int] = {}
        rows = export_page_rows(response, repaired)
        if repaired:
            self._log_repairs(rows, repaired)
        for row in rows:
            if not isinstance(row, dict):
                msg = (
                    f"{request_label(response.request)} sent a {type(row).__name__} row where "
                    f"an object was expected: {str(row)[:100]}"
                )
                raise PersonalizationRequestError(msg)
        return rows

    def _log_repairs(self, rows: list[Any], repaired: dict[str, int]) -> None:
        """Each value whose invalid text was replaced (U+FFFD), with its record's id."""
        for path, count in repaired.items():
            index, _, field = path.partition("]")
            row = rows[int(index[1:])] if index[1:].isdigit() else None
            record_id = row.get("id") if isinstance(row, dict) else None
            self.invalid_text_replaced += count
            self.logger.warning(
                "%s: replaced %d invalid code point(s) (a lone UTF-16 surrogate or bytes that "
                "are not UTF-8) with U+FFFD in %s of record %s; %d in this stream so far",
                self.name, count, field.lstrip(".") or path, record_id, self.invalid_text_replaced)

    def parse_rows(
        self, rows: list[dict[str, Any]], response: requests.Response
    ) -> Iterable[dict[str, Any]]:
        """The records of a page's rows; rows as served unless a stream shapes them."""
        return rows

    def _generate_record_messages(self, record: dict[str, Any]) -> Iterator[RecordMessage]:
        """The SDK's RECORD messages, without two per-record passes that change nothing here.

        singer-sdk walks every record (nested maps included) to pop deselected properties,
        then conforms its top-level values to the schema. With every property selected and
        the stream's own schema in the catalog (the usual case), neither pass can change a
        record this tap built (`schemas` types every value, NaN scores included), yet the two
        took a third of an export's CPU (benchmarked). Any other selection or schema goes
        through the SDK unchanged. This overrides a private SDK method: the unit tests compare
        its messages with the SDK's own, so an SDK change that matters fails them.
        """
        if not self._records_pass_as_built():
            yield from super()._generate_record_messages(record)
            return
        for stream_map in self.stream_maps:
            mapped = stream_map.transform(record)
            if mapped is not None:
                yield RecordMessage(
                    stream=stream_map.stream_alias,
                    record=mapped,
                    version=self._stream_version,
                    time_extracted=datetime.now(UTC),
                )

    def _records_pass_as_built(self) -> bool:
        """Whether deselection and conformance would leave records as built (see above);
        decided again whenever the selection changes (the SDK then makes a new mask)."""
        mask = self.mask
        if mask is not self._checked_mask:
            self._checked_mask = mask
            self._records_as_built = all(mask.values()) and self.effective_schema == self.schema
        return self._records_as_built

    def backoff_wait_generator(self) -> Generator[float, Any, None]:
        return retry_waits()

    def backoff_max_tries(self) -> int:
        return int(self.config.get("max_retries") or DEFAULT_MAX_RETRIES)

    def backoff_handler(self, details: Any) -> None:
        log_retry(self.logger, details)

    def request_decorator(self, func: Callable[..., _T]) -> Callable[..., _T]:
        # Jitter lives inside `retry_waits` (none on a Retry-After), so `backoff_jitter` is unused.
        return with_retries(
            func,
            max_tries=self.backoff_max_tries,
            logger=self.logger,
            wait_gen=self.backoff_wait_generator,
            on_backoff=self.backoff_handler,
        )
