"""The emulated org's data: one SQLite table per sObject, queried with SOQL, changed by DML.

The HTTP layer (REST, SOAP, Bulk) only translates wire formats; every rule about records
(field-level security, types, ids, duplicates, soft deletes, modification stamps) is decided
here once, so the three APIs cannot disagree. SQLite runs in WAL mode so queries never wait
for a bulk apply; all writes go through one lock, which also orders the modification stamps.
"""

from __future__ import annotations

import json
import queue
import random
import sqlite3
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

from emulators.salesforce.catalog import (
    ACCESS_LEVELS,
    Catalog,
    FieldDef,
    ObjectDef,
    describe_global,
    describe_object,
    fold,
    shadow_column,
)
from emulators.salesforce.ids import make_id, normalize_id
from emulators.salesforce.soql import (
    Column,
    Plan,
    SoqlError,
    compile_condition,
    compile_query,
    format_datetime,
    quote_ident,
)
from emulators.salesforce.validation import (
    BatchCheck,
    BatchPlan,
    InvalidBatchError,
    StoredRow,
    parse_datetime,
)

__all__ = ["InvalidBatchError", "QueryCursor", "SalesforceStore", "SoqlError"]

OPERATIONS = ("insert", "update", "upsert", "delete")
RAW_CHUNK = 20_000  # rows per seeding transaction
FETCH_CHUNK = 500  # rowids per row-loading statement (well under SQLite's variable limit)
MAX_IDLE_CONNECTIONS = 8
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_AFFINITY = {"boolean": "INTEGER", "int": "INTEGER", "double": "REAL", "currency": "REAL",
             "percent": "REAL"}
_READERS: dict[str, Callable[[Any], Any]] = {"boolean": bool, "int": int, "double": float,
                                             "currency": float, "percent": float}
NOT_FOUND_MESSAGE = "The requested resource does not exist"

META_SCHEMA = """
CREATE TABLE IF NOT EXISTS _sandbox_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO _sandbox_meta (key, value) VALUES ('catalog_version', 0);
CREATE TABLE IF NOT EXISTS _custom_fields (
    object TEXT NOT NULL, name TEXT NOT NULL, spec TEXT NOT NULL, PRIMARY KEY (object, name));
CREATE TABLE IF NOT EXISTS _field_access (
    object TEXT NOT NULL, field TEXT NOT NULL, access TEXT NOT NULL, PRIMARY KEY (object, field));
CREATE TABLE IF NOT EXISTS _id_seq (object TEXT PRIMARY KEY, next INTEGER NOT NULL);
"""


def sql(*parts: str) -> str:
    """SQL text from trusted fragments: identifiers are quoted, values are always bound."""
    return " ".join(parts)


def _fold_or_none(value: Any) -> Any:
    return fold(value) if isinstance(value, str) else value


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class QueryCursor:
    """The rows matching a query, materialised as rowids and loaded page by page.

    Holding 8 bytes per matching row (not the rows) keeps a million-row result small, and
    the cursor needs no open SQLite statement, so any thread can serve the next page.
    """

    def __init__(self, plan: Plan, rowids: array[int], total_size: int,
                 loader: Callable[[Plan, Sequence[int]], list[dict[str, Any]]]) -> None:
        self.sobject = plan.sobject.name
        self.fields = plan.fields
        self.total_size = total_size
        self._plan = plan
        self._rowids = rowids
        self._position = 0
        self._loader = loader
        self._lock = threading.Lock()

    @property
    def done(self) -> bool:
        return self._position >= len(self._rowids)

    def fetch(self, n: int) -> list[dict[str, Any]]:
        with self._lock:
            chunk = self._rowids[self._position:self._position + max(0, n)]
            self._position += len(chunk)
        return self._loader(self._plan, chunk)


class SalesforceStore:
    def __init__(self, db_path: Path) -> None:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self._path = db_path
        self._idle: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._write_lock = threading.RLock()
        self._stamp_lock = threading.Lock()
        self._catalog_lock = threading.Lock()
        self._catalog_state: tuple[int, Catalog] = (-1, Catalog())
        self._last_ms = 0
        with self._connection() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            with self._write_lock:
                conn.executescript(META_SCHEMA)
                for obj in self._catalog(conn).names():
                    self._ensure_table(conn, self._catalog(conn).full(obj))
            self._last_ms = self._latest_stamp(conn)

    @property
    def path(self) -> Path:
        return self._path

    # connections -------------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False,
                               timeout=60)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA temp_store=MEMORY")
        conn.execute("PRAGMA cache_size=-65536")
        conn.create_function("sf_fold", 1, _fold_or_none, deterministic=True)
        return conn

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """A pooled connection: request threads come and go, connections stay warm."""
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = self._open()
        try:
            yield conn
        finally:
            if self._idle.qsize() < MAX_IDLE_CONNECTIONS:
                self._idle.put(conn)
            else:
                conn.close()

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        with self._write_lock, self._connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # catalog -----------------------------------------------------------------------------
    def _catalog(self, conn: sqlite3.Connection) -> Catalog:
        """The merged catalog, reloaded only when a field or an access level changed."""
        version = conn.execute(
            "SELECT value FROM _sandbox_meta WHERE key = 'catalog_version'").fetchone()[0]
        with self._catalog_lock:
            cached_version, catalog = self._catalog_state
            if cached_version == version:
                return catalog
            custom = [(obj, FieldDef.from_spec(json.loads(spec))) for obj, spec in
                      conn.execute("SELECT object, spec FROM _custom_fields ORDER BY rowid")]
            access = {(obj, name): level for obj, name, level in
                      conn.execute("SELECT object, field, access FROM _field_access")}
            catalog = Catalog(custom, access)
            self._catalog_state = (version, catalog)
            return catalog

    @staticmethod
    def _bump_catalog(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE _sandbox_meta SET value = value + 1 WHERE key = 'catalog_version'")

    def _ensure_table(self, conn: sqlite3.Connection, obj: ObjectDef | None) -> None:
        """Create the object's table, or add the columns and indexes it lacks."""
        assert obj is not None
        table = quote_ident(obj.name)
        conn.execute(sql("CREATE TABLE IF NOT EXISTS", table,
                         '("_row" INTEGER PRIMARY KEY, "Id" TEXT NOT NULL UNIQUE)'))
        existing = {row[1] for row in conn.execute(sql("PRAGMA table_info(", table, ")"))}
        for item in obj.fields:
            if item.name not in existing:
                conn.execute(sql("ALTER TABLE", table, "ADD COLUMN", quote_ident(item.name),
                                 _AFFINITY.get(item.type, "TEXT")))
            column = item.name
            if item.shadowed:
                column = shadow_column(item.name)
                if column not in existing:
                    conn.execute(sql("ALTER TABLE", table, "ADD COLUMN", quote_ident(column),
                                     "TEXT"))
                    conn.execute(sql("UPDATE", table, "SET", quote_ident(column), "=",
                                     "sf_fold(", quote_ident(item.name), ")"))
            if item.indexed:
                conn.execute(sql("CREATE INDEX IF NOT EXISTS",
                                 quote_ident(f"{obj.name}_{column}_idx"), "ON", table,
                                 "(", quote_ident(column), ")"))

    def _object(self, conn: sqlite3.Connection, sobject: str, *, visible: bool) -> ObjectDef:
        catalog = self._catalog(conn)
        obj = catalog.visible(sobject) if visible else catalog.full(sobject)
        if obj is None:
            raise SoqlError("NOT_FOUND", NOT_FOUND_MESSAGE)
        return obj

    # stamps ------------------------------------------------------------------------------
    def _latest_stamp(self, conn: sqlite3.Connection) -> int:
        latest = 0
        for name in self._catalog(conn).names():
            row = conn.execute(sql('SELECT MAX("SystemModstamp") FROM', quote_ident(name)))
            text = row.fetchone()[0]
            moment = parse_datetime(text) if text else None
            if moment is not None:
                latest = max(latest, (moment - _EPOCH) // timedelta(milliseconds=1))
        return latest

    def _stamp(self) -> str:
        """Now, in milliseconds, strictly later than any stamp handed out before.

        Taken under the write lock, so stamp order is commit order: a reader that saw stamp
        S never later finds a change stamped before S.
        """
        with self._stamp_lock:
            millis = max(time.time_ns() // 1_000_000, self._last_ms + 1)
            self._last_ms = millis
        return format_datetime(_EPOCH + timedelta(milliseconds=millis))

    def _reserve_ids(self, conn: sqlite3.Connection, obj: ObjectDef, count: int) -> list[str]:
        row = conn.execute("SELECT next FROM _id_seq WHERE object = ?", (obj.name,)).fetchone()
        start = row[0] if row else 1
        conn.execute("INSERT OR REPLACE INTO _id_seq (object, next) VALUES (?, ?)",
                     (obj.name, start + count))
        return [make_id(obj.key_prefix, start + offset) for offset in range(count)]

    # describe ----------------------------------------------------------------------------
    def describe(self, sobject: str) -> dict[str, Any]:
        with self._connection() as conn:
            return describe_object(self._object(conn, sobject, visible=True))

    def describe_global(self) -> dict[str, Any]:
        with self._connection() as conn:
            catalog = self._catalog(conn)
            objects = [catalog.visible(name) for name in catalog.names()]
        return describe_global(obj for obj in objects if obj is not None)

    # queries -----------------------------------------------------------------------------
    def query(self, soql: str, *, include_deleted: bool = False) -> QueryCursor:
        with self._connection() as conn:
            catalog = self._catalog(conn)
            plan = compile_query(soql, catalog.visible, include_deleted=include_deleted)
            if plan.count_only:
                inner = sql("SELECT 1 FROM", plan.from_sql, "WHERE", plan.where_sql,
                            "LIMIT ? OFFSET ?")
                count = conn.execute(sql("SELECT COUNT(*) FROM (", inner, ")"),
                                     [*plan.params, *self._window(plan)]).fetchone()[0]
                return QueryCursor(plan, array("q"), int(count), self._load_rows)
            rowids = self._rowids(conn, plan)
        return QueryCursor(plan, rowids, len(rowids), self._load_rows)

    @staticmethod
    def _window(plan: Plan) -> tuple[int, int]:
        return (plan.limit if plan.limit is not None else -1, plan.offset or 0)

    def _rowids(self, conn: sqlite3.Connection, plan: Plan) -> array[int]:
        statement = sql("SELECT t.rowid FROM", plan.from_sql, "WHERE", plan.where_sql,
                        "ORDER BY", plan.order_sql, "LIMIT ? OFFSET ?")
        found = array("q")
        cursor = conn.execute(statement, [*plan.params, *self._window(plan)])
        while batch := cursor.fetchmany(10_000):
            found.extend(row[0] for row in batch)
        return found

    def _load_rows(self, plan: Plan, rowids: Sequence[int]) -> list[dict[str, Any]]:
        """Typed rows for `rowids`, in that order; parent fields nested under the relationship."""
        if not rowids:
            return []
        parents = list(plan.relationships.items())
        select = ", ".join(["t.rowid", *(column.sql for column in plan.columns),
                            *(f'{alias}."Id"' for _, alias in parents)])
        readers = [(column.relationship, column.field.name, _READERS.get(column.field.type))
                   for column in plan.columns]
        width = len(readers)
        by_rowid: dict[int, tuple[Any, ...]] = {}
        with self._connection() as conn:
            for chunk in _chunks(list(rowids), FETCH_CHUNK):
                statement = sql("SELECT", select, "FROM", plan.from_sql, "WHERE t.rowid IN (",
                                ", ".join("?" * len(chunk)), ")")
                for row in conn.execute(statement, list(chunk)):
                    by_rowid[row[0]] = row
        rows = []
        for rowid in rowids:
            found = by_rowid.get(rowid)
            if found is None:  # removed since the query ran (an admin reset)
                continue
            present = {name: found[1 + width + index] is not None
                       for index, (name, _) in enumerate(parents)}
            record: dict[str, Any] = {}
            for index, (relationship, name, reader) in enumerate(readers):
                value = found[1 + index]
                if reader is not None and value is not None:
                    value = reader(value)
                if relationship is None:
                    record[name] = value
                    continue
                if relationship not in record:
                    record[relationship] = {} if present[relationship] else None
                if record[relationship] is not None:
                    record[relationship][name] = value
            rows.append(record)
        return rows

    def records(self, sobject: str, where: str | None = None,
                fields: list[str] | None = None) -> list[dict[str, Any]]:
        """Administrator read: every field (hidden ones too), deleted rows included."""
        with self._connection() as conn:
            catalog = self._catalog(conn)
            obj = self._object(conn, sobject, visible=False)
            chosen = list(obj.fields)
            if fields:
                chosen = []
                for name in fields:
                    item = obj.field(name)
                    if item is None:
                        raise SoqlError("INVALID_FIELD", f"No such column '{name}' on entity "
                                                         f"'{obj.name}'.")
                    chosen.append(item)
            if where and where.strip():
                plan = compile_condition(where, obj, catalog.full)
            else:
                plan = Plan(obj, [], False, f"{quote_ident(obj.name)} AS t", "1", [],
                            "t.rowid ASC", None, None, {})
            columns = [Column(None, item, f"t.{quote_ident(item.name)}") for item in chosen]
            plan = replace(plan, columns=columns)
            rowids = self._rowids(conn, plan)
        return self._load_rows(plan, rowids)

    def counts(self) -> dict[str, int]:
        """Live (not deleted) records per object."""
        with self._connection() as conn:
            return {name: conn.execute(sql("SELECT COUNT(*) FROM", quote_ident(name),
                                           'WHERE "IsDeleted" = 0')).fetchone()[0]
                    for name in self._catalog(conn).names()}

    # changes -----------------------------------------------------------------------------
    def apply(self, operation: str, sobject: str, records: list[dict[str, Any]], *,
              external_id_field: str | None = None, lock_row_rate: float = 0.0,
              rng: random.Random | None = None,
              locked: Sequence[bool] | None = None) -> list[dict[str, Any]]:
        """Bulk 1.0 DML: one result per record, in request order.

        `locked` marks records whose parent another batch holds; `lock_row_rate` fails a
        random share on top (both as UNABLE_TO_LOCK_ROW).
        """
        if operation not in OPERATIONS:
            raise InvalidBatchError(f"Invalid operation: {operation}")
        if any(not isinstance(record, dict) for record in records):
            raise InvalidBatchError("Each record must be a JSON object of field values")
        records = [{k: v for k, v in record.items() if k != "attributes"} for record in records]
        with self._writing() as conn:
            catalog = self._catalog(conn)
            obj = catalog.visible(sobject)
            full = catalog.full(sobject)
            if obj is None or full is None:
                raise InvalidBatchError(f"Unable to find object: {sobject}")
            refused = list(locked) if locked is not None else [False] * len(records)
            if lock_row_rate > 0:
                draw = (rng or random.Random()).random
                refused = [draw() < lock_row_rate or taken for taken in refused]
            lookup = _RowLookup(conn, catalog)
            check = BatchCheck(catalog, obj, records, refused, lookup,
                               lambda count: self._reserve_ids(conn, full, count))
            plan = check.run(operation, external_id_field)
            self._write(conn, full, plan, self._stamp())
        return [result or {} for result in plan.results]

    def _write(self, conn: sqlite3.Connection, obj: ObjectDef, plan: BatchPlan,
               stamp: str) -> None:
        """Carry out a checked batch: grouped executemany per shape of change."""
        table = quote_ident(obj.name)
        inserts = [p for p in plan.writes if p.rowid is None]
        defaults = {item.name: _raw_value(item, item.default) for item in obj.fields
                    if item.default is not None}
        system = ("Id", "IsDeleted", "CreatedDate", "LastModifiedDate", "SystemModstamp")
        names = sorted(({name for p in inserts for name in p.changes} | set(defaults))
                       - set(system))
        by_name = {item.name: item for item in obj.fields}
        shadows = [name for name in names if by_name[name].shadowed]
        if inserts:
            columns = [*system, *names, *(shadow_column(name) for name in shadows)]
            rows = []
            for planned in inserts:
                values = {**defaults, **planned.changes}
                rows.append([planned.id, 0, stamp, stamp, stamp,
                             *(values.get(name) for name in names),
                             *(_fold_or_none(values.get(name)) for name in shadows)])
            conn.executemany(sql("INSERT INTO", table, "(",
                                 ", ".join(quote_ident(c) for c in columns), ") VALUES (",
                                 ", ".join("?" * len(columns)), ")"), rows)
        groups: dict[tuple[str, ...], list[list[Any]]] = {}
        for planned in plan.writes:
            if planned.rowid is None:
                continue
            shape = tuple(sorted(planned.changes))
            folded = [_fold_or_none(planned.changes[n]) for n in shape if by_name[n].shadowed]
            groups.setdefault(shape, []).append(
                [*(planned.changes[n] for n in shape), *folded, stamp, stamp, planned.rowid])
        for shape, rows in groups.items():
            targets = [*shape, *(shadow_column(n) for n in shape if by_name[n].shadowed),
                       "LastModifiedDate", "SystemModstamp"]
            assignments = ", ".join(f"{quote_ident(name)} = ?" for name in targets)
            conn.executemany(sql("UPDATE", table, "SET", assignments, "WHERE rowid = ?"), rows)
        if plan.deletes:
            conn.executemany(sql("UPDATE", table, 'SET "IsDeleted" = 1, "LastModifiedDate" = ?,',
                                 '"SystemModstamp" = ? WHERE rowid = ?'),
                             [(stamp, stamp, p.rowid) for p in plan.deletes])
        for planned in [*plan.writes, *plan.deletes]:
            plan.results[planned.index] = {"success": True, "created": planned.rowid is None,
                                           "id": planned.id, "errors": []}

    def insert_raw(self, sobject: str, records: Iterable[dict[str, Any]]) -> list[str]:
        """Seeding: rows as given, no validation beyond field names; ids returned in order."""
        with self._connection() as conn:
            full = self._object(conn, sobject, visible=False)
        ids: list[str] = []
        source = iter(records)
        while chunk := list(islice(source, RAW_CHUNK)):
            with self._writing() as conn:
                ids.extend(self._insert_chunk(conn, full, chunk, self._stamp()))
        return ids

    def _insert_chunk(self, conn: sqlite3.Connection, obj: ObjectDef,
                      chunk: list[dict[str, Any]], stamp: str) -> list[str]:
        """One seeding transaction; per-column converters keep the per-row work small."""
        mapping: dict[str, FieldDef] = {}
        for key in {key for record in chunk for key in record}:
            if key == "attributes":
                continue
            item = obj.field(key)
            if item is None:
                raise InvalidBatchError(f"Field name not found : {key}")
            mapping[key] = item
        targets = {key: (item.name, _raw_converter(item)) for key, item in mapping.items()}
        system = {"Id": None, "IsDeleted": 0, "CreatedDate": stamp, "LastModifiedDate": stamp,
                  "SystemModstamp": stamp}
        defaults = {**{item.name: _raw_value(item, item.default) for item in obj.fields
                       if item.default is not None}, **system}
        given = {name for name, _ in targets.values()}
        fields = [item for item in obj.fields if item.name in given or item.name in defaults]
        names = [item.name for item in fields]
        shadows = [item.name for item in fields if item.shadowed]
        position = {name: index for index, name in enumerate(names)}
        slots = {key: (position[name], convert) for key, (name, convert) in targets.items()}
        shadow_slots = [position[name] for name in shadows]
        id_slot = position["Id"]
        template = [defaults.get(name) for name in names]
        missing_ids = 0
        rows = []
        for record in chunk:
            row = template.copy()
            for key, value in record.items():
                slot = slots.get(key)
                if slot is not None:
                    index, convert = slot
                    row[index] = convert(value) if convert and value is not None else value
            if not row[id_slot]:
                missing_ids += 1
            for index in shadow_slots:
                value = row[index]
                row.append(value.casefold() if isinstance(value, str) else value)
            rows.append(row)
        new_ids = iter(self._reserve_ids(conn, obj, missing_ids))
        ids = []
        for row in rows:
            if not row[id_slot]:
                row[id_slot] = next(new_ids)
            ids.append(row[id_slot])
        columns = [*names, *(shadow_column(name) for name in shadows)]
        statement = sql("INSERT INTO", quote_ident(obj.name), "(",
                        ", ".join(quote_ident(name) for name in columns), ") VALUES (",
                        ", ".join("?" * len(columns)), ")")
        try:
            conn.executemany(statement, rows)
        except sqlite3.IntegrityError as error:
            raise InvalidBatchError(f"{obj.name}: {error} (an Id given twice?)") from None
        return ids

    # administration ----------------------------------------------------------------------
    def set_field_access(self, sobject: str, field: str, access: str) -> None:
        """Field-level security of the integration user: edit, read or hidden."""
        if access not in ACCESS_LEVELS:
            raise ValueError(f"access must be one of {', '.join(ACCESS_LEVELS)}, not {access!r}")
        with self._writing() as conn:
            obj = self._catalog(conn).full(sobject)
            if obj is None:
                raise ValueError(f"unknown sObject {sobject!r}")
            item = obj.field(field)
            if item is None:
                raise ValueError(f"no field {field!r} on {obj.name}")
            if item.name == "Id":
                raise ValueError("the Id field is always visible")
            conn.execute("INSERT OR REPLACE INTO _field_access (object, field, access) "
                         "VALUES (?, ?, ?)", (obj.name, item.name, access))
            self._bump_catalog(conn)

    def define_field(self, sobject: str, spec: dict[str, Any]) -> dict[str, Any]:
        """Add a custom field at run time (metadata deploys); returns its describe entry."""
        item = FieldDef.from_spec(spec)
        if not item.custom:
            raise ValueError(f"custom field names end in __c: {item.name!r}")
        with self._writing() as conn:
            catalog = self._catalog(conn)
            obj = catalog.full(sobject)
            if obj is None:
                raise ValueError(f"unknown sObject {sobject!r}")
            existing = obj.field(item.name)
            if existing is not None and not existing.custom:
                raise ValueError(f"{obj.name}.{item.name} is a standard field")
            conn.execute("INSERT OR REPLACE INTO _custom_fields (object, name, spec) "
                         "VALUES (?, ?, ?)", (obj.name, item.name, json.dumps(item.to_spec())))
            self._bump_catalog(conn)
            self._ensure_table(conn, self._catalog(conn).full(obj.name))
        return self.describe_field(obj.name, item.name)

    def describe_field(self, sobject: str, field: str) -> dict[str, Any]:
        described = self.describe(sobject)
        return next(entry for entry in described["fields"]
                    if entry["name"].lower() == field.lower())

    def reset(self) -> None:
        """An empty org: no rows, default field access, no run-time fields."""
        with self._writing() as conn:
            for name in self._catalog(conn).names():
                conn.execute(sql("DELETE FROM", quote_ident(name)))
            conn.execute("DELETE FROM _field_access")
            conn.execute("DELETE FROM _custom_fields")
            self._bump_catalog(conn)


def _raw_converter(item: FieldDef) -> Callable[[Any], Any] | None:
    """None when seed values of this field are stored as given (text, numbers)."""
    if item.type not in ("boolean", "datetime", "date", "id", "reference"):
        return None
    memo: dict[Any, Any] = {}  # seed data repeats parents and timestamps a lot

    def convert(value: Any) -> Any:
        try:
            return memo[value]
        except KeyError:
            if len(memo) > 50_000:
                memo.clear()
            memo[value] = converted = _raw_value(item, value)
            return converted
        except TypeError:  # unhashable: stored as given, like any other odd seed value
            return _raw_value(item, value)

    return convert


def _raw_value(item: FieldDef, value: Any) -> Any:
    """Seed values in stored form, leniently: anything not convertible is kept as given."""
    if value is None:
        return None
    kind = item.type
    if kind == "boolean":
        if isinstance(value, str):
            return int(value.strip().lower() == "true")
        return int(bool(value))
    if kind == "datetime":
        if isinstance(value, str):
            if value[10:11] == "T":  # fast paths for the forms seeders usually write
                if len(value) == 28 and value.endswith("+0000"):
                    return value
                if len(value) == 20 and value[19] == "Z":
                    return value[:19] + ".000+0000"
                if len(value) == 24 and value[19] == "." and value[23] == "Z":
                    return value[:23] + "+0000"
            moment = parse_datetime(value)
            return format_datetime(moment) if moment else value
        if isinstance(value, datetime):
            return format_datetime(value)
        return value
    if kind == "date" and isinstance(value, date | datetime):
        return (value.date() if isinstance(value, datetime) else value).isoformat()
    if kind in ("id", "reference") and isinstance(value, str):
        return normalize_id(value) or value
    return value


class _RowLookup:
    """Reads for BatchCheck, on the connection holding the write transaction."""

    def __init__(self, conn: sqlite3.Connection, catalog: Catalog) -> None:
        self._conn = conn
        self._catalog = catalog

    def _converted(self, obj: ObjectDef) -> str:
        """Converted leads refuse changes even when the user cannot see IsConverted."""
        full = self._catalog.full(obj.name)
        return 't."IsConverted"' if full and full.field("IsConverted") else "0"

    def rows_by_id(self, obj: ObjectDef, ids: Sequence[str]) -> dict[str, StoredRow]:
        found = {}
        for chunk in _chunks(list(ids), FETCH_CHUNK):
            statement = sql('SELECT t.rowid, t."Id", t."IsDeleted",', self._converted(obj),
                            "FROM", quote_ident(obj.name), 'AS t WHERE t."Id" IN (',
                            ", ".join("?" * len(chunk)), ")")
            for rowid, record_id, deleted, converted in self._conn.execute(statement, chunk):
                found[record_id] = StoredRow(rowid, record_id, bool(deleted), bool(converted))
        return found

    def live_rows_by_value(self, obj: ObjectDef, item: FieldDef,
                           values: Sequence[Any]) -> dict[Any, list[StoredRow]]:
        if item.shadowed:
            column = f"t.{quote_ident(shadow_column(item.name))}"
        elif item.folded:
            column = f"sf_fold(t.{quote_ident(item.name)})"
        else:
            column = f"t.{quote_ident(item.name)}"
        found: dict[Any, list[StoredRow]] = {}
        for chunk in _chunks(list(values), FETCH_CHUNK):
            statement = sql('SELECT t.rowid, t."Id",', self._converted(obj), ",", column,
                            "FROM", quote_ident(obj.name), "AS t WHERE", column, "IN (",
                            ", ".join("?" * len(chunk)), ') AND t."IsDeleted" = 0',
                            "ORDER BY t.rowid")
            for rowid, record_id, converted, value in self._conn.execute(statement, chunk):
                found.setdefault(value, []).append(
                    StoredRow(rowid, record_id, False, bool(converted)))
        return found
