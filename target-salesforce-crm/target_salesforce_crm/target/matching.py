"""Look-up validation: which CRM record(s) each input record stands for.

One SOQL statement per chunk of at most `lookup_batch_size` candidates and object, sent
through the SOAP partner API because its SOQL travels in the request body (1,000 e-mail
addresses do not fit a REST GET). The rules of an object that Salesforce can evaluate
(`IN` lists; SOQL text comparison is case-insensitive) are OR-ed into one WHERE clause and
their priority is applied here, rule by rule. Rules Salesforce cannot evaluate (normalised
company names, fuzzy names) use an index of the whole object, fetched once per run and only
when a candidate reaches such a rule.

Ambiguity is never resolved silently: the mapping's policy decides (reject, update all,
most recently modified), and a tie the policy cannot break is reported as ambiguous.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from crm_sync_mapping.paths import parse_path
from rapidfuzz import fuzz, process

from target_salesforce_crm import soql
from target_salesforce_crm.target.outcomes import SourceRef

MatchStatus = Literal["matched", "unmatched", "ambiguous"]

# Normalisations that only change case or surrounding blanks: Salesforce's own text
# comparison in SOQL is case-insensitive, so a rule using only these can be asked as `IN`.
QUERYABLE_NORMALIZERS = frozenset(
    {"trim", "strip", "lower", "lowercase", "casefold", "email", "normalize_email"}
)
# The longest SOQL statement Salesforce accepts.
MAX_SOQL_CHARS = 100_000
# A Salesforce id: 15 case-sensitive characters, optionally 3 check characters.
_ID_PATTERN = re.compile(r"^[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?$")
_ID_TYPES = frozenset({"id", "reference"})


class QueryClient(Protocol):
    """What matching needs from `client.SalesforceClient`."""

    def soap_query(self, soql: str, *, include_deleted: bool = False,
                   batch_size: int = 2000) -> Iterator[dict[str, Any]]: ...


@dataclass(frozen=True)
class Candidate:
    """An input record offered to one object's look-up."""

    source: SourceRef
    record: Mapping[str, Any]


@dataclass
class MatchResult:
    """The look-up verdict for one candidate; `ids` are the CRM records to write."""

    candidate: Candidate
    status: MatchStatus
    ids: tuple[str, ...] = ()
    rule: str | None = None
    keys: dict[str, str | None] = field(default_factory=dict)
    reason: str = ""
    # The matched rows as read (Id → row): with `read_fields`, their current values.
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class _IndexedRule:
    """A rule answered from the whole-object index: exact normalised values or fuzzy."""

    exact: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    choices: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)


def normalize_domain(value: Any) -> str | None:
    """`https://www.Example.com/about` and `example.com` are the same company's domain."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().lower()
    host = urlsplit(text if "//" in text else f"//{text}").hostname or ""
    host = host.removeprefix("www.")
    return host or None


def _id15(value: str) -> str:
    return value[:15]


class ObjectMatcher:
    """Matches candidates against one CRM object; lives for the whole run (index cache)."""

    def __init__(
        self,
        client: QueryClient,
        mapping: Any,
        describe: Mapping[str, Any],
        *,
        lookup_batch_size: int = 1000,
        read_fields: Sequence[str] = (),
        logger: logging.Logger | None = None,
    ) -> None:
        self.client = client
        self.mapping = mapping
        self.sobject: str = mapping.sobject
        self.lookup_batch_size = lookup_batch_size
        # Read along in the same look-up (a dry run shows old → new without extra calls).
        self.read_fields = tuple(read_fields)
        self.logger = logger or logging.getLogger(__name__)
        self.fields = {str(f["name"]).lower(): f for f in describe.get("fields", [])}
        self.rules = tuple(rule for rule in mapping.match if getattr(rule, "enabled", True))
        self.queryable = tuple(self._is_queryable(rule) for rule in self.rules)
        self._index: list[_IndexedRule | None] | None = None
        self.lookup_calls = 0

    # -- public -------------------------------------------------------------------------

    def match(self, candidates: Sequence[Candidate]) -> Iterator[MatchResult]:
        """Yield one verdict per candidate, in input order, chunk by chunk."""
        for start in range(0, len(candidates), self.lookup_batch_size):
            chunk = candidates[start:start + self.lookup_batch_size]
            yield from self._match_chunk(chunk)

    # -- rules --------------------------------------------------------------------------

    def _is_queryable(self, rule: Any) -> bool:
        if rule.fuzzy is not None:
            return False
        return set(rule.normalize or ()) <= QUERYABLE_NORMALIZERS

    def _field_type(self, name: str) -> str:
        return str(self.fields.get(name.lower(), {}).get("type", "string"))

    def _name(self, name: str) -> str:
        """The field's name as describe spells it, which is how rows come back."""
        return str(self.fields.get(name.lower(), {}).get("name", name))

    def _keys(self, record: Mapping[str, Any]) -> list[str | None]:
        keys: list[str | None] = []
        for rule in self.rules:
            key = rule.key(record)
            if key is not None and self._field_type(rule.field) in _ID_TYPES:
                key = _id15(key) if _ID_PATTERN.match(key) else None
            keys.append(key or None)
        return keys

    def _askable(self, rule_no: int, key: str) -> bool:
        """A value longer than the field can hold cannot be stored, so it cannot match."""
        length = self.fields.get(self.rules[rule_no].field.lower(), {}).get("length") or 0
        return not length or len(key) <= length

    # -- one chunk: one statement -------------------------------------------------------

    def _match_chunk(self, chunk: Sequence[Candidate]) -> Iterator[MatchResult]:
        keys = [self._keys(c.record) for c in chunk]
        found = self._query(keys)
        for candidate, record_keys in zip(chunk, keys, strict=True):
            yield self._decide(candidate, record_keys, found)

    def _query(self, keys: list[list[str | None]]) -> list[dict[str, list[dict[str, Any]]]]:
        """Rows of the chunk's single look-up, indexed by rule and normalised value."""
        found: list[dict[str, list[dict[str, Any]]]] = [defaultdict(list) for _ in self.rules]
        values: list[set[str]] = [set() for _ in self.rules]
        for record_keys in keys:
            for rule_no, key in enumerate(record_keys):
                if key is not None and self.queryable[rule_no] and self._askable(rule_no, key):
                    values[rule_no].add(key)
        if not any(values):
            return found
        for statement in self._statements(values):
            for row in self._run(statement):
                for rule_no, rule in enumerate(self.rules):
                    if not self.queryable[rule_no]:
                        continue
                    value = self._crm_key(rule, row.get(self._name(rule.field)))
                    if value is not None:
                        found[rule_no][value].append(row)
        return found

    def _statements(self, values: list[set[str]]) -> Iterator[str]:
        """One statement, unless it would pass Salesforce's 100,000-character limit."""
        statement = self._statement(values)
        if len(statement) <= MAX_SOQL_CHARS or sum(len(v) for v in values) <= 1:
            yield statement
            return
        self.logger.warning(
            "%s look-up of %d values exceeds %d SOQL characters; splitting it",
            self.sobject, sum(len(v) for v in values), MAX_SOQL_CHARS,
        )
        halves: tuple[list[set[str]], list[set[str]]] = ([], [])
        for rule_values in values:
            ordered = sorted(rule_values)
            middle = len(ordered) // 2
            halves[0].append(set(ordered[:middle]))
            halves[1].append(set(ordered[middle:]))
        for half in halves:
            if any(half):
                yield from self._statements(half)

    def _select_fields(self, rule_numbers: Iterable[int]) -> list[str]:
        names = ["Id", "LastModifiedDate"]
        for rule_no in rule_numbers:
            rule = self.rules[rule_no]
            names.append(rule.field)
            if rule.fuzzy is not None and rule.fuzzy.tie_breaker_field:
                names.append(rule.fuzzy.tie_breaker_field)
        names += self.read_fields
        unique: dict[str, str] = {}
        for name in names:  # SOQL refuses a field named twice, whatever its case
            unique.setdefault(name.lower(), name)
        return list(unique.values())

    def _statement(self, values: list[set[str]]) -> str:
        queryable = [n for n, ok in enumerate(self.queryable) if ok]
        clauses = [
            f"{self.rules[n].field} IN ({', '.join(soql.quote(v) for v in sorted(values[n]))})"
            for n in queryable if values[n]
        ]
        conditions = ["(" + " OR ".join(clauses) + ")" if len(clauses) > 1 else clauses[0]]
        return self._soql(self._select_fields(queryable), conditions)

    def _soql(self, fields: list[str], conditions: list[str]) -> str:
        """The statement; values inside `conditions` are already `soql.quote`d literals."""
        if self.mapping.exclude_converted:
            conditions = [*conditions, "IsConverted = false"]
        parts = ["SELECT", ", ".join(fields), "FROM", self.sobject]
        if conditions:
            parts += ["WHERE", " AND ".join(conditions)]
        return " ".join(parts)

    def _run(self, statement: str) -> Iterator[dict[str, Any]]:
        self.lookup_calls += 1
        return self.client.soap_query(statement)

    def _crm_key(self, rule: Any, value: Any) -> str | None:
        if value is None:
            return None
        if self._field_type(rule.field) in _ID_TYPES:
            return _id15(str(value))
        return rule.normalize_crm(value)

    # -- the whole-object index (normalised and fuzzy rules) ------------------------------

    def _indexed(self) -> list[_IndexedRule | None]:
        if self._index is not None:
            return self._index
        rule_numbers = [n for n, ok in enumerate(self.queryable) if not ok]
        statement = self._soql(self._select_fields(rule_numbers), [])
        index: list[_IndexedRule | None] = [
            None if ok else _IndexedRule() for ok in self.queryable
        ]
        count = 0
        for row in self._run(statement):
            count += 1
            for rule_no in rule_numbers:
                entry = index[rule_no]
                assert entry is not None
                rule = self.rules[rule_no]
                value = self._crm_key(rule, row.get(self._name(rule.field)))
                if value is None:
                    continue
                if self.rules[rule_no].fuzzy is None:
                    entry.exact.setdefault(value, []).append(row)
                else:
                    entry.choices.append(value)
                    entry.rows.append(row)
        self.logger.info("%s index loaded for name matching: %d records", self.sobject, count)
        self._index = index
        return index

    def _index_hits(self, rule_no: int, key: str, record: Mapping[str, Any]) -> list[dict]:
        entry = self._indexed()[rule_no]
        assert entry is not None
        rule = self.rules[rule_no]
        if rule.fuzzy is None:
            return entry.exact.get(key, [])
        scored = process.extract(
            key, entry.choices, scorer=fuzz.token_sort_ratio,
            score_cutoff=rule.fuzzy.min_score, limit=None,
        )
        hits = [entry.rows[position] for _choice, _score, position in scored]
        return self._tie_break(rule, hits, record)

    def _tie_break(self, rule: Any, hits: list[dict], record: Mapping[str, Any]) -> list[dict]:
        """Several names close enough: the company's domain may single one out."""
        fuzzy = rule.fuzzy
        if len(hits) < 2 or not fuzzy.tie_breaker_source or not fuzzy.tie_breaker_field:
            return hits
        domain = normalize_domain(parse_path(fuzzy.tie_breaker_source).read(record))
        if domain is None:
            return hits
        website = self._name(fuzzy.tie_breaker_field)
        same = [row for row in hits if normalize_domain(row.get(website)) == domain]
        return same or hits

    # -- the verdict ----------------------------------------------------------------------

    def _decide(
        self,
        candidate: Candidate,
        record_keys: list[str | None],
        found: list[dict[str, list[dict[str, Any]]]],
    ) -> MatchResult:
        keys = {rule.field: key for rule, key in zip(self.rules, record_keys, strict=True)}
        for rule_no, key in enumerate(record_keys):
            if key is None:
                continue
            if self.queryable[rule_no]:
                hits = found[rule_no].get(key, [])
            else:
                hits = self._index_hits(rule_no, key, candidate.record)
            if hits:
                return self._resolve(candidate, hits, self.rules[rule_no].field, keys)
        return MatchResult(candidate, "unmatched", keys=keys)

    def _resolve(
        self, candidate: Candidate, hits: list[dict], rule: str, keys: dict[str, str | None]
    ) -> MatchResult:
        rows = list({row["Id"]: row for row in hits}.values())
        by_id = {row["Id"]: row for row in rows} if self.read_fields else {}
        if len(rows) == 1:
            return MatchResult(candidate, "matched", (rows[0]["Id"],), rule, keys, rows=by_id)
        ids = tuple(sorted(row["Id"] for row in rows))
        policy = self.mapping.ambiguity
        if policy == "update_all":
            return MatchResult(candidate, "matched", ids, rule, keys, rows=by_id)
        if policy == "most_recent":
            latest = max(str(row.get("LastModifiedDate") or "") for row in rows)
            newest = [row["Id"] for row in rows if str(row.get("LastModifiedDate") or "") == latest]
            if len(newest) == 1:
                return MatchResult(candidate, "matched", (newest[0],), rule, keys, rows=by_id)
            ids = tuple(sorted(newest))
        return MatchResult(
            candidate, "ambiguous", ids, rule, keys,
            reason=f"{len(ids)} {self.sobject} records match on {rule}: {', '.join(ids)}",
        )
