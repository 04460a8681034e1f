"""DML checks: which records of a batch succeed, and the exact error of each that fails.

The checks and message texts follow what Salesforce answers in Bulk API results, so a
client's error handling (which codes to retry, which to report with the record) is exercised
against realistic failures. This module decides; the store reads rows for it (through
`Lookup`) and writes what it planned, so the rules stay free of SQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from emulators.salesforce.catalog import TEXT_TYPES, Catalog, FieldDef, ObjectDef, fold
from emulators.salesforce.ids import normalize_id
from emulators.salesforce.soql import format_datetime

_EMAIL_LOCAL_SPECIALS = frozenset("!#$%&'*+/=?^_`{|}~.-")
FLS_HINT = ("Please check the security settings of this field and verify that it is "
            "read/write for your profile or permission set.")


class InvalidBatchError(ValueError):
    """The whole batch is refused (Bulk 1.0 marks it Failed with this state message).

    A ValueError, so callers that turn bad input into a 400 answer handle it too.
    """


class RecordError(Exception):
    """One record refused; becomes `{"statusCode", "message", "fields"}` in the results."""

    def __init__(self, code: str, message: str, fields: Iterable[str] = ()) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.fields = list(fields)

    def as_result(self) -> dict[str, Any]:
        return {"statusCode": self.code, "message": self.message, "fields": self.fields}


def map_fields(obj: ObjectDef, keys: Iterable[str]) -> dict[str, FieldDef]:
    """Record keys -> visible fields; a key the user cannot see fails the whole batch."""
    mapping = {}
    for key in keys:
        item = obj.field(key)
        if item is None:
            raise InvalidBatchError(f"Field name not found : {key}")
        mapping[key] = item
    return mapping


def prepare(obj: ObjectDef, mapping: Mapping[str, FieldDef], record: Mapping[str, Any], *,
            creating: bool, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The record's field values in stored form, with defaults on create.

    Raises RecordError for the first problem, in Salesforce's order: access, then values,
    then required fields.
    """
    wanted = [(mapping[key], value) for key, value in record.items() if key not in skip]
    denied = [item.name for item, _ in wanted
              if not (item.createable if creating else item.updateable)]
    if denied:
        raise RecordError("INVALID_FIELD_FOR_INSERT_UPDATE",
                          f"Unable to create/update fields: {', '.join(denied)}. {FLS_HINT}",
                          denied)
    changes = {item.name: coerce(item, value) for item, value in wanted}
    if creating:
        for item in obj.fields:
            if item.name not in changes and item.default is not None:
                changes[item.name] = coerce(item, item.default)
        missing = [item.name for item in obj.fields
                   if item.required and changes.get(item.name) is None]
    else:
        missing = [item.name for item, _ in wanted
                   if item.required and changes.get(item.name) is None]
    if missing:
        raise RecordError("REQUIRED_FIELD_MISSING",
                          f"Required fields are missing: [{', '.join(missing)}]", missing)
    return changes


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _wrong_type(item: FieldDef, value: Any) -> RecordError:
    return RecordError("INVALID_TYPE_ON_FIELD_IN_RECORD",
                       f"{item.name}: value not of required type: {_shown(value)}", [item.name])


def _out_of_range(item: FieldDef, value: Any) -> RecordError:
    return RecordError("NUMBER_OUTSIDE_VALID_RANGE",
                       f"{item.name}: value outside of valid range on numeric field: "
                       f"{_shown(value)}", [item.name])


def coerce(item: FieldDef, value: Any) -> Any:
    """`value` (JSON from a client) in the field's stored form; RecordError if it cannot be."""
    if isinstance(value, str) and value == "" and item.type != "boolean":
        value = None  # Salesforce stores no empty strings
    if value is None:
        return 0 if item.type == "boolean" else None
    kind = item.type
    if kind in TEXT_TYPES:
        return _text(item, value)
    if kind in ("reference", "id"):
        record_id = normalize_id(value) if isinstance(value, str) else None
        if record_id is None:
            raise RecordError("MALFORMED_ID", f"{item.display_label}: id value of incorrect "
                                              f"type: {_shown(value)}", [item.name])
        return record_id
    if kind == "boolean":
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return int(value.strip().lower() == "true")
        raise _wrong_type(item, value)
    if kind == "int":
        return _integer(item, value)
    if kind in ("double", "currency", "percent"):
        return _number(item, value)
    if kind == "date":
        return _date(item, value)
    if kind == "datetime":
        return _datetime(item, value)
    raise _wrong_type(item, value)


def _text(item: FieldDef, value: Any) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float | str):
        text = str(value)
    else:
        raise _wrong_type(item, value)
    if item.type == "multipicklist":
        chosen = [part.strip() for part in text.split(";") if part.strip()]
        if item.restricted and any(part not in item.picklist for part in chosen):
            bad = next(part for part in chosen if part not in item.picklist)
            raise RecordError("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                              f"{item.name}: bad value for restricted picklist field: {bad}",
                              [item.name])
        text = ";".join(chosen)
    elif item.type == "picklist" and item.restricted and text not in item.picklist:
        raise RecordError("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                          f"{item.name}: bad value for restricted picklist field: {text}",
                          [item.name])
    if item.length and len(text) > item.length:
        raise RecordError("STRING_TOO_LONG", f"{item.name}: data value too large: {text} "
                                             f"(max length={item.length})", [item.name])
    if item.type == "email" and not is_valid_email(text):
        raise RecordError("INVALID_EMAIL_ADDRESS", f"{item.name}: invalid email address: "
                                                   f"{text}", [item.name])
    return text


def is_valid_email(text: str) -> bool:
    """Salesforce's rule of thumb: one @, no spaces, a dotted domain; unicode letters are fine."""
    if text.count("@") != 1 or any(ch.isspace() for ch in text):
        return False
    local, domain = text.split("@")
    if not local or len(local) > 64 or local[0] == "." or local[-1] == "." or ".." in local:
        return False
    if not all(ch.isalnum() or ch in _EMAIL_LOCAL_SPECIALS for ch in local):
        return False
    labels = domain.split(".")
    if len(labels) < 2:
        return False
    for label in labels:
        if not label or label[0] == "-" or label[-1] == "-":
            return False
        if not all(ch.isalnum() or ch == "-" for ch in label):
            return False
    return len(labels[-1]) >= 2 and labels[-1].isalpha()


def _decimal(item: FieldDef, value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _wrong_type(item, value)
    text = value.strip() if isinstance(value, str) else repr(value)
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise _wrong_type(item, value) from None
    if not number.is_finite():
        raise _wrong_type(item, value)
    return number


def _integer(item: FieldDef, value: Any) -> int:
    number = _decimal(item, value)
    if number != number.to_integral_value():
        raise _wrong_type(item, value)
    if item.digits and abs(number) >= 10 ** item.digits:
        raise _out_of_range(item, value)
    return int(number)


def _number(item: FieldDef, value: Any) -> float:
    number = _decimal(item, value)
    rounded = round(number, item.scale)
    whole_digits = len(str(abs(int(rounded))).lstrip("0"))
    if item.precision and whole_digits > item.precision - item.scale:
        raise _out_of_range(item, value)
    return float(rounded)


def _date(item: FieldDef, value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):  # Bulk JSON: epoch millis
        return datetime.fromtimestamp(value / 1000, UTC).date().isoformat()
    if isinstance(value, str) and len(value.strip()) == 10:
        try:
            return date.fromisoformat(value.strip()).isoformat()
        except ValueError:
            pass
    raise _wrong_type(item, value)


def parse_datetime(text: str) -> datetime | None:
    """ISO 8601 as clients send it: `Z`, `+01:00`, `+0100`, fractions, or a bare date."""
    text = text.strip()
    if len(text) == 10:
        try:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        except ValueError:
            return None
    if len(text) < 19 or text[10] not in "Tt":
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _datetime(item: FieldDef, value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):  # Bulk JSON: epoch millis
        return format_datetime(datetime.fromtimestamp(value / 1000, UTC))
    moment = parse_datetime(value) if isinstance(value, str) else None
    if moment is None:
        raise _wrong_type(item, value)
    return format_datetime(moment)


# -- one batch: ids, matching, references, uniqueness, lock failures --------------------------

@dataclass(frozen=True)
class StoredRow:
    rowid: int
    id: str
    deleted: bool
    converted: bool


class Lookup(Protocol):
    """The reads a batch check needs; the store answers them inside its write transaction."""

    def rows_by_id(self, obj: ObjectDef, ids: Sequence[str]) -> dict[str, StoredRow]: ...

    def live_rows_by_value(self, obj: ObjectDef, item: FieldDef,
                           values: Sequence[Any]) -> dict[Any, list[StoredRow]]:
        """Not-deleted rows whose (folded, for text) value is in `values`, keyed by it."""
        ...


@dataclass
class Planned:
    """A record that passed every check: what to write. `rowid` None means insert."""

    index: int
    changes: dict[str, Any]
    id: str | None = None
    rowid: int | None = None


@dataclass
class BatchPlan:
    results: list[dict[str, Any] | None]  # failures filled in; None = will succeed
    writes: list[Planned] = field(default_factory=list)
    deletes: list[Planned] = field(default_factory=list)


LOCKED = RecordError("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record")


class BatchCheck:
    """Decides the outcome of every record of one DML batch, as Salesforce would."""

    def __init__(self, catalog: Catalog, obj: ObjectDef, records: Sequence[Mapping[str, Any]],
                 locked: Sequence[bool], lookup: Lookup,
                 allocate_ids: Callable[[int], list[str]]) -> None:
        self.catalog = catalog
        self.obj = obj
        self.records = records
        self.locked = locked
        self.lookup = lookup
        self.allocate_ids = allocate_ids
        self.plan = BatchPlan([None] * len(records))

    def _fail(self, index: int, error: RecordError) -> None:
        self.plan.results[index] = {"success": False, "created": False, "id": None,
                                    "errors": [error.as_result()]}

    def _ok(self, index: int) -> bool:
        return self.plan.results[index] is None

    def run(self, operation: str, external_id_field: str | None) -> BatchPlan:
        indices = range(len(self.records))
        if operation == "delete":
            located = self._locate(indices, "delete")
            self.plan.deletes = [Planned(i, {}, row.id, row.rowid) for i, row in located.items()]
            self._apply_locks(self.plan.deletes)
            self.plan.deletes = [p for p in self.plan.deletes if self._ok(p.index)]
            return self.plan
        mapping = map_fields(self.obj, {key for record in self.records for key in record})
        if operation == "update":
            targets = self._locate(indices, "update")
            self._prepare(targets, mapping, skip_id=True)
        elif operation == "insert":
            self._prepare({i: None for i in indices}, mapping, skip_id=False)
        else:
            self._upsert(mapping, external_id_field)
        inserts = [p for p in self.plan.writes if p.rowid is None]
        for planned, new_id in zip(inserts, self.allocate_ids(len(inserts)), strict=True):
            planned.id = new_id
        self._check_references()
        self._check_unique()
        self._apply_locks(self.plan.writes)
        self.plan.writes = [p for p in self.plan.writes if self._ok(p.index)]
        return self.plan

    # ids ---------------------------------------------------------------------------------
    def _id_value(self, index: int) -> Any:
        record = self.records[index]
        return next((value for key, value in record.items() if key.lower() == "id"), None)

    def _locate(self, indices: Iterable[int], verb: str) -> dict[int, StoredRow]:
        """Existing, live rows for the records' Ids; every other record fails."""
        wanted: dict[int, str] = {}
        for index in indices:
            raw = self._id_value(index)
            if raw is None or raw == "":
                self._fail(index, RecordError("MISSING_ARGUMENT",
                                              f"Id not specified in an {verb} call"
                                              if verb == "update" else
                                              f"Id not specified in a {verb} call", ["Id"]))
                continue
            record_id = normalize_id(raw) if isinstance(raw, str) else None
            if record_id is None or record_id[:3] != self.obj.key_prefix:
                self._fail(index, RecordError(
                    "MALFORMED_ID", f"{self.obj.label or self.obj.name} ID: id value of "
                                    f"incorrect type: {raw}", ["Id"]))
                continue
            wanted[index] = record_id
        seen: dict[str, int] = {}
        for record_id in wanted.values():
            seen[record_id] = seen.get(record_id, 0) + 1
        for index, record_id in list(wanted.items()):
            if seen[record_id] > 1:
                self._fail(index, RecordError("DUPLICATE_VALUE", "Duplicate Id specified"))
                del wanted[index]
        rows = self.lookup.rows_by_id(self.obj, sorted(set(wanted.values())))
        located = {}
        for index, record_id in wanted.items():
            row = rows.get(record_id)
            if row is None:
                self._fail(index, RecordError("INVALID_CROSS_REFERENCE_KEY",
                                              "invalid cross reference id"))
            elif row.deleted:
                self._fail(index, RecordError("ENTITY_IS_DELETED", "entity is deleted"))
            elif row.converted and verb != "delete":
                self._fail(index, RecordError("CANNOT_UPDATE_CONVERTED_LEAD",
                                              "cannot reference converted lead"))
            else:
                located[index] = row
        return located

    def _prepare(self, targets: Mapping[int, StoredRow | None],
                 mapping: Mapping[str, FieldDef], *, skip_id: bool) -> None:
        for index, row in targets.items():
            record = self.records[index]
            # An empty Id column on insert is how Bulk clients write "no id yet".
            skip = frozenset(k for k, v in record.items() if k.lower() == "id"
                             and (skip_id or v is None or v == ""))
            try:
                changes = prepare(self.obj, mapping, record, creating=row is None, skip=skip)
            except RecordError as error:
                self._fail(index, error)
                continue
            self.plan.writes.append(Planned(index, changes, row.id if row else None,
                                            row.rowid if row else None))

    # upsert ------------------------------------------------------------------------------
    def _external_field(self, name: str | None) -> FieldDef:
        item = self.obj.field(name) if name else None
        if item is None or not (item.external_id or item.id_lookup):
            raise InvalidBatchError(f"The field name provided, {name} is not an External ID "
                                    f"or indexed field for {self.obj.name}")
        return item

    def _upsert(self, mapping: Mapping[str, FieldDef], external_id_field: str | None) -> None:
        ext = self._external_field(external_id_field)
        if ext.name == "Id":
            with_id = [i for i in range(len(self.records)) if self._id_value(i) not in (None, "")]
            targets: dict[int, StoredRow | None] = dict(self._locate(with_id, "update"))
            targets.update({i: None for i in range(len(self.records))
                            if i not in with_id and self._ok(i)})
            self._prepare(dict(sorted(targets.items())), mapping, skip_id=True)
            return
        keys: dict[int, Any] = {}
        for index, record in enumerate(self.records):
            raw = next((v for k, v in record.items() if k.lower() == ext.name.lower()), None)
            try:
                value = coerce(ext, raw)
            except RecordError as error:
                self._fail(index, error)
                continue
            if value is None:
                self._fail(index, RecordError("MISSING_ARGUMENT", f"{ext.name} not specified",
                                              [ext.name]))
                continue
            keys[index] = fold(value) if ext.folded else value
        counts: dict[Any, int] = {}
        for key in keys.values():
            counts[key] = counts.get(key, 0) + 1
        for index, key in list(keys.items()):
            if counts[key] > 1:
                shown = next(v for k, v in self.records[index].items()
                             if k.lower() == ext.name.lower())
                self._fail(index, RecordError("DUPLICATE_VALUE",
                                              f"Duplicate external id specified: {shown}",
                                              [ext.name]))
                del keys[index]
        matches = self.lookup.live_rows_by_value(self.obj, ext, sorted(set(keys.values()),
                                                                      key=str))
        targets = {}
        for index, key in keys.items():
            rows = matches.get(key, [])
            if len(rows) > 1:
                found = ", ".join(row.id for row in rows)
                self._fail(index, RecordError(
                    "DUPLICATE_EXTERNAL_ID",
                    f"{ext.name}: more than one record found for external id field: [{found}]",
                    [ext.name]))
            elif rows and rows[0].converted:
                self._fail(index, RecordError("CANNOT_UPDATE_CONVERTED_LEAD",
                                              "cannot reference converted lead"))
            else:
                targets[index] = rows[0] if rows else None
        self._prepare(targets, mapping, skip_id=False)

    # cross-record checks -----------------------------------------------------------------
    def _check_references(self) -> None:
        for item in self.obj.fields:
            if item.type != "reference":
                continue
            target = self.catalog.full(item.reference_to[0])
            pending = [(p, p.changes[item.name]) for p in self.plan.writes
                       if self._ok(p.index) and p.changes.get(item.name) is not None]
            if target is None or not pending:
                continue
            wanted = []
            for planned, value in pending:
                if value[:3] != target.key_prefix:
                    self._fail(planned.index, RecordError(
                        "FIELD_INTEGRITY_EXCEPTION",
                        f"{item.display_label}: id value of incorrect type: {value}",
                        [item.name]))
                else:
                    wanted.append((planned, value))
            rows = self.lookup.rows_by_id(target, sorted({value for _, value in wanted}))
            for planned, value in wanted:
                row = rows.get(value)
                if row is None:
                    self._fail(planned.index, RecordError(
                        "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id",
                        [item.name]))
                elif row.deleted:
                    self._fail(planned.index, RecordError("ENTITY_IS_DELETED",
                                                          "entity is deleted", [item.name]))

    def _check_unique(self) -> None:
        for item in self.obj.fields:
            if not item.unique or item.type == "id":
                continue
            pending = [(p, fold(p.changes[item.name]) if item.folded else p.changes[item.name])
                       for p in self.plan.writes
                       if self._ok(p.index) and p.changes.get(item.name) is not None]
            if not pending:
                continue
            stored = self.lookup.live_rows_by_value(self.obj, item,
                                                    sorted({v for _, v in pending}, key=str))
            claimed: dict[Any, str] = {}
            for planned, value in pending:
                others = [row.id for row in stored.get(value, []) if row.id != planned.id]
                holder = others[0] if others else claimed.get(value)
                if holder is not None:
                    self._fail(planned.index, RecordError(
                        "DUPLICATE_VALUE", f"duplicate value found: {item.name} duplicates "
                                           f"value on record with id: {holder}", [item.name]))
                else:
                    claimed[value] = str(planned.id)

    def _apply_locks(self, planned: Iterable[Planned]) -> None:
        for item in planned:
            if self._ok(item.index) and self.locked[item.index]:
                self._fail(item.index, LOCKED)
