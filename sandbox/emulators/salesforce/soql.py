"""A SOQL subset: tokenizer, recursive-descent parser, and compiler to parameterised SQLite.

Clients are tested against this parser, so it is strict where Salesforce is strict (quoted
vs unquoted literals per field type, no mixing of AND and OR without parentheses, escape
sequences, length limits) and reports errors with Salesforce's codes and texts. Every value
reaches SQLite as a bound parameter, never as SQL text.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from emulators.salesforce.catalog import FieldDef, ObjectDef, fold, shadow_column
from emulators.salesforce.ids import normalize_id

MAX_SOQL_LENGTH = 100_000
MAX_STRING_LITERAL = 4_000
MAX_OFFSET = 2_000
_BIG_IN_LIST = 200  # longer IN lists travel as one JSON parameter (SQLite variable limit)
_JSON_MEMBERS = "IN (SELECT value FROM json_each(?))"

_ESCAPES = {"'": "'", '"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t", "b": "\b",
            "f": "\f"}
_KEYWORDS = frozenset({"SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER",
                       "BY", "ASC", "DESC", "NULLS", "FIRST", "LAST", "LIMIT", "OFFSET",
                       "NULL", "TRUE", "FALSE", "COUNT", "GROUP", "HAVING", "INCLUDES",
                       "EXCLUDES", "WITH", "FOR", "USING", "TYPEOF"})
_COMPARISONS = ("=", "!=", "<>", "<", ">", "<=", ">=")
_SOAP_TYPE_NAMES = {"int": "integer", "datetime": "dateTime", "currency": "double",
                    "percent": "double", "reference": "id"}
INVALID_FIELD_HINT = ("If you are attempting to use a custom field, be sure to append the "
                      "'__c' after the custom field name. Please reference your WSDL or the "
                      "describe call for the appropriate names.")


class SoqlError(Exception):
    """A query refused the way Salesforce refuses it (`code` is the API error code)."""

    def __init__(self, code: str, message: str, detail: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.detail = detail if detail is not None else message


# -- tokens ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Token:
    kind: str  # ident, string, number, date, datetime, op, eof
    text: str  # source text (for errors)
    pos: int
    value: Any = None  # decoded value of literals
    like: str | None = None  # string literals: SQLite LIKE pattern (escape char '\')

    @property
    def upper(self) -> str:
        return self.text.upper() if self.kind == "ident" else ""


def _positioned(soql: str, pos: int, detail: str) -> str:
    """Salesforce's error layout: the line, a caret, `ERROR at Row:r:Column:c`, the reason."""
    row = soql.count("\n", 0, pos) + 1
    line_start = soql.rfind("\n", 0, pos) + 1
    line_end = soql.find("\n", pos)
    line = soql[line_start:line_end if line_end >= 0 else len(soql)]
    column = pos - line_start + 1
    start = max(0, column - 1 - 60)
    excerpt = line[start:start + 120]
    caret = " " * (column - 1 - start) + "^"
    return f"{excerpt}\n{caret}\nERROR at Row:{row}:Column:{column}\n{detail}"


def _error(code: str, soql: str, pos: int, detail: str) -> SoqlError:
    return SoqlError(code, _positioned(soql, pos, detail), detail)


class _Scanner:
    """Splits SOQL into tokens; literal syntax (strings, dates, datetimes) is checked here."""

    def __init__(self, soql: str) -> None:
        self.soql = soql
        self.pos = 0

    def tokens(self) -> list[Token]:
        found = []
        while True:
            token = self._next()
            found.append(token)
            if token.kind == "eof":
                return found

    def _fail(self, pos: int, detail: str) -> SoqlError:
        return _error("MALFORMED_QUERY", self.soql, pos, detail)

    def _next(self) -> Token:
        soql, length = self.soql, len(self.soql)
        while self.pos < length and soql[self.pos].isspace():
            self.pos += 1
        start = self.pos
        if start >= length:
            return Token("eof", "<EOF>", start)
        ch = soql[start]
        if ch.isascii() and (ch.isalpha() or ch == "_"):
            end = start + 1
            while end < length and soql[end].isascii() and (soql[end].isalnum() or
                                                              soql[end] == "_"):
                end += 1
            self.pos = end
            return Token("ident", soql[start:end], start)
        if ch == "'":
            return self._string(start)
        if ch.isdigit() or (ch in "+-" and start + 1 < length and soql[start + 1].isdigit()):
            return self._number_or_date(start)
        for op in ("<=", ">=", "!=", "<>"):
            if soql.startswith(op, start):
                self.pos = start + 2
                return Token("op", op, start)
        if ch in "=<>(),.":
            self.pos = start + 1
            return Token("op", ch, start)
        raise self._fail(start, f"unexpected token: '{ch}'")

    def _string(self, start: int) -> Token:
        soql, length = self.soql, len(self.soql)
        value: list[str] = []
        like: list[str] = []
        index = start + 1
        while True:
            if index >= length:
                raise self._fail(index, "mismatched character '<EOF>' expecting '''")
            ch = soql[index]
            if ch == "'":
                break
            if ch != "\\":
                value.append(ch)
                like.append("\\" + ch if ch == "\\" else ch)
                index += 1
                continue
            code = soql[index + 1] if index + 1 < length else ""
            if code in _ESCAPES:
                decoded = _ESCAPES[code]
                value.append(decoded)
                like.append("\\\\" if decoded == "\\" else decoded)
                index += 2
            elif code in ("%", "_"):  # a literal wildcard character, meaningful in LIKE
                value.append(code)
                like.append("\\" + code)
                index += 2
            elif code == "u" and _is_hex(soql[index + 2:index + 6]):
                decoded = chr(int(soql[index + 2:index + 6], 16))
                value.append(decoded)
                like.append("\\" + decoded if decoded in "%_\\" else decoded)
                index += 6
            else:
                literal = soql[start:min(index + 2, length)]
                raise self._fail(index, f"Invalid string literal '{literal}'. Illegal character "
                                        f"sequence '\\{code}' in string literal.")
        self.pos = index + 1
        text = "".join(value)
        if len(text) > MAX_STRING_LITERAL:
            raise self._fail(start, f"String literal is too long: {len(text)} characters; the "
                                    f"maximum is {MAX_STRING_LITERAL}.")
        return Token("string", soql[start:self.pos], start, text, "".join(like))

    def _number_or_date(self, start: int) -> Token:
        soql, length = self.soql, len(self.soql)
        end = start + 1
        while end < length and (soql[end].isalnum() or soql[end] in ".:-+_"):
            end += 1
        text = soql[start:end]
        self.pos = end
        if len(text) >= 10 and text[4] == "-" and text[:4].isdigit():
            return self._temporal(text, start)
        digits = text[1:] if text[0] in "+-" else text
        whole, _, fraction = digits.partition(".")
        if whole.isdigit() and (fraction.isdigit() or ("." not in digits)) and \
                whole.isascii() and fraction.isascii():
            value: int | float = float(text) if "." in text else int(text)
            return Token("number", text, start, value)
        raise self._fail(start, f"unexpected token: '{text}'")

    def _temporal(self, text: str, start: int) -> Token:
        day_text, separator, time_text = text.partition("T")
        try:
            day = date.fromisoformat(day_text) if len(day_text) == 10 else None
        except ValueError:
            day = None
        if day is None:
            raise self._fail(start, f"unexpected token: '{text}'")
        if not separator:
            return Token("date", text, start, day.isoformat())
        moment = _parse_soql_time(day, time_text)
        if moment is None:
            raise self._fail(start, f"unexpected token: '{text}'")
        return Token("datetime", text, start, format_datetime(moment))


def _is_hex(text: str) -> bool:
    return len(text) == 4 and all(ch in "0123456789abcdefABCDEF" for ch in text)


def _parse_soql_time(day: date, text: str) -> datetime | None:
    """`hh:mm:ss[.fff](Z|+hh:mm|-hh:mm)`, the only datetime forms SOQL accepts."""
    if text.endswith("Z"):
        clock, offset = text[:-1], timedelta(0)
    elif len(text) > 6 and text[-6] in "+-" and text[-3] == ":":
        clock, zone = text[:-6], text[-6:]
        if not (zone[1:3].isdigit() and zone[4:6].isdigit()):
            return None
        minutes = int(zone[1:3]) * 60 + int(zone[4:6])
        offset = timedelta(minutes=minutes if zone[0] == "+" else -minutes)
    else:
        return None
    main, dot, fraction = clock.partition(".")
    parts = main.split(":")
    if len(parts) != 3 or not all(len(p) == 2 and p.isdigit() for p in parts):
        return None
    if dot and not (fraction.isdigit() and 1 <= len(fraction) <= 9):
        return None
    hour, minute, second = (int(p) for p in parts)
    if hour > 23 or minute > 59 or second > 59 or abs(offset) >= timedelta(hours=24):
        return None
    micro = int((fraction + "000000")[:6]) if dot else 0
    local = datetime(day.year, day.month, day.day, hour, minute, second, micro,
                     tzinfo=timezone(offset))
    return local.astimezone(UTC)


def format_datetime(moment: datetime) -> str:
    """The stored and served form: `2024-01-01T00:00:00.000+0000` (UTC, milliseconds).

    Fixed width, so text order is time order and SQLite can compare it directly.
    """
    utc = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}+0000"


# -- syntax tree ------------------------------------------------------------------------------

@dataclass(frozen=True)
class FieldPath:
    parts: tuple[str, ...]
    pos: int

    @property
    def text(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True)
class Comparison:
    path: FieldPath
    operator: str  # = != < > <= >= LIKE IN NOT IN
    values: tuple[Token, ...]


@dataclass(frozen=True)
class Junction:
    operator: str  # AND / OR
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Negation:
    item: Condition


Condition = Comparison | Junction | Negation


@dataclass(frozen=True)
class OrderItem:
    path: FieldPath
    descending: bool
    nulls: str | None  # FIRST / LAST / None (Salesforce default)


@dataclass
class SelectStatement:
    fields: list[FieldPath]
    count: bool
    sobject: Token
    where: Condition | None = None
    order: list[OrderItem] = field(default_factory=list)
    limit: int | None = None
    offset: int | None = None


class _Parser:
    def __init__(self, soql: str) -> None:
        if len(soql) > MAX_SOQL_LENGTH:
            raise SoqlError("MALFORMED_QUERY",
                            "SOQL statements cannot be longer than 100,000 characters.")
        self.soql = soql
        self.tokens = _Scanner(soql).tokens()
        self.index = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def _advance(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def _unexpected(self, token: Token | None = None) -> SoqlError:
        token = token or self.token
        return _error("MALFORMED_QUERY", self.soql, token.pos, f"unexpected token: '{token.text}'")

    def _keyword(self, word: str) -> bool:
        if self.token.upper == word:
            self.index += 1
            return True
        return False

    def _expect_keyword(self, word: str) -> None:
        if not self._keyword(word):
            raise self._unexpected()

    def _expect_op(self, op: str) -> None:
        if not (self.token.kind == "op" and self.token.text == op):
            raise self._unexpected()
        self.index += 1

    def _is_op(self, op: str) -> bool:
        return self.token.kind == "op" and self.token.text == op

    # statement ------------------------------------------------------------------------------
    def statement(self) -> SelectStatement:
        self._expect_keyword("SELECT")
        fields, count = self._select_list()
        self._expect_keyword("FROM")
        if self.token.kind != "ident" or self.token.upper in _KEYWORDS:
            raise self._unexpected()
        statement = SelectStatement(fields, count, self._advance())
        if self._keyword("WHERE"):
            statement.where = self.condition()
        if self._keyword("ORDER"):
            self._expect_keyword("BY")
            statement.order = self._order_list()
        if self._keyword("LIMIT"):
            statement.limit = self._count_literal()
        if self._keyword("OFFSET"):
            offset_token = self.token
            statement.offset = self._count_literal()
            if statement.offset > MAX_OFFSET:
                raise _error("NUMBER_OUTSIDE_VALID_RANGE", self.soql, offset_token.pos,
                             f"Maximum SOQL offset allowed is {MAX_OFFSET}")
        if self.token.kind != "eof":
            raise self._unexpected()
        return statement

    def condition_only(self) -> Condition:
        condition = self.condition()
        if self.token.kind != "eof":
            raise self._unexpected()
        return condition

    def _select_list(self) -> tuple[list[FieldPath], bool]:
        if self.token.upper == "COUNT" and self.tokens[self.index + 1].text == "(":
            self.index += 2
            if not self._is_op(")"):
                raise _error("MALFORMED_QUERY", self.soql, self.token.pos,
                             "the sandbox supports only COUNT() (no aggregate COUNT(field))")
            self.index += 1
            return [], True
        fields = [self._field_path()]
        while self._is_op(","):
            self.index += 1
            fields.append(self._field_path())
        return fields, False

    def _field_path(self) -> FieldPath:
        token = self.token
        if token.kind != "ident" or token.upper in _KEYWORDS:
            raise self._unexpected()
        parts = [self._advance().text]
        while self._is_op("."):
            self.index += 1
            if self.token.kind != "ident":
                raise self._unexpected()
            parts.append(self._advance().text)
        return FieldPath(tuple(parts), token.pos)

    def _count_literal(self) -> int:
        token = self.token
        if token.kind != "number" or not isinstance(token.value, int) or token.value < 0 \
                or token.text[0] in "+-":
            raise self._unexpected()
        self.index += 1
        return int(token.value)

    def _order_list(self) -> list[OrderItem]:
        items = []
        while True:
            path = self._field_path()
            descending = False
            if self._keyword("DESC"):
                descending = True
            else:
                self._keyword("ASC")
            nulls = None
            if self._keyword("NULLS"):
                if self._keyword("FIRST"):
                    nulls = "FIRST"
                else:
                    self._expect_keyword("LAST")
                    nulls = "LAST"
            items.append(OrderItem(path, descending, nulls))
            if not self._is_op(","):
                return items
            self.index += 1

    # conditions -----------------------------------------------------------------------------
    def condition(self) -> Condition:
        """`a AND b AND c` or `a OR b OR c`; mixing the two needs parentheses in SOQL."""
        first = self._unary()
        word = self.token.upper
        if word not in ("AND", "OR"):
            return first
        items = [first]
        while self._keyword(word):
            items.append(self._unary())
        if self.token.upper in ("AND", "OR"):
            raise self._unexpected()
        return Junction(word, tuple(items))

    def _unary(self) -> Condition:
        if self._keyword("NOT"):
            return Negation(self._unary())
        if self._is_op("("):
            self.index += 1
            inner = self.condition()
            self._expect_op(")")
            return inner
        return self._comparison()

    def _comparison(self) -> Comparison:
        path = self._field_path()
        token = self.token
        if token.kind == "op" and token.text in _COMPARISONS:
            self.index += 1
            operator = "!=" if token.text == "<>" else token.text
            return Comparison(path, operator, (self._value(),))
        if self._keyword("LIKE"):
            return Comparison(path, "LIKE", (self._value(),))
        negated = self._keyword("NOT")
        if self._keyword("IN"):
            return Comparison(path, "NOT IN" if negated else "IN", self._value_list())
        raise self._unexpected()

    def _value(self) -> Token:
        token = self.token
        if token.kind in ("string", "number", "date", "datetime") or \
                token.upper in ("NULL", "TRUE", "FALSE"):
            self.index += 1
            return token
        raise self._unexpected()

    def _value_list(self) -> tuple[Token, ...]:
        self._expect_op("(")
        values = [self._value()]
        while self._is_op(","):
            self.index += 1
            values.append(self._value())
        self._expect_op(")")
        return tuple(values)


def parse(soql: str) -> SelectStatement:
    """Syntax only; raises SoqlError(MALFORMED_QUERY) with Salesforce's layout."""
    return _Parser(soql).statement()


# -- compilation to SQLite ------------------------------------------------------------------

Resolver = Callable[[str], ObjectDef | None]


@dataclass(frozen=True)
class Column:
    """One selected field: where its value lands in the row and where it comes from."""

    relationship: str | None  # canonical parent relationship name, or None
    field: FieldDef
    sql: str

    @property
    def path(self) -> str:
        return f"{self.relationship}.{self.field.name}" if self.relationship else self.field.name


@dataclass
class Plan:
    """A compiled query: SQL fragments and bound parameters, ready for the store."""

    sobject: ObjectDef
    columns: list[Column]
    count_only: bool
    from_sql: str
    where_sql: str
    params: list[Any]
    order_sql: str
    limit: int | None
    offset: int | None
    relationships: dict[str, str]  # parent relationship name -> its table alias

    @property
    def fields(self) -> list[str]:
        return [column.path for column in self.columns]


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class _Compiler:
    def __init__(self, soql: str, resolve: Resolver, root: ObjectDef,
                 include_deleted: bool) -> None:
        self.soql = soql
        self.resolve = resolve
        self.root = root
        self.include_deleted = include_deleted
        self.joins: dict[str, tuple[str, FieldDef, ObjectDef]] = {}
        self.params: list[Any] = []

    def _invalid_field(self, path: FieldPath, name: str, entity: str) -> SoqlError:
        return _error("INVALID_FIELD", self.soql, path.pos,
                      f"No such column '{name}' on entity '{entity}'. {INVALID_FIELD_HINT}")

    def field(self, path: FieldPath) -> tuple[str | None, FieldDef, str]:
        """(relationship, field, table alias holding the stored value)."""
        parts = path.parts
        if len(parts) == 1:
            item = self.root.field(parts[0])
            if item is None:
                raise self._invalid_field(path, parts[0], self.root.name)
            return None, item, "t"
        reference = self.root.relationship(parts[0])
        parent = self.resolve(reference.reference_to[0]) if reference else None
        if reference is None or parent is None:
            raise _error("INVALID_FIELD", self.soql, path.pos,
                         f"Didn't understand relationship '{parts[0]}' in field path. If you "
                         "are attempting to use a custom relationship, be sure to append the "
                         "'__r' after the custom relationship name. Please reference your WSDL "
                         "or the describe call for the appropriate names.")
        if len(parts) > 2:
            raise _error("INVALID_FIELD", self.soql, path.pos,
                         f"Didn't understand relationship '{parts[1]}' in field path. The "
                         "sandbox supports one level of parent relationship.")
        item = parent.field(parts[1])
        if item is None:
            raise self._invalid_field(path, parts[1], parent.name)
        name = str(reference.relationship_name)
        alias = self._join(name, reference, parent)
        return name, item, alias

    def _join(self, name: str, reference: FieldDef, parent: ObjectDef) -> str:
        if name not in self.joins:
            self.joins[name] = (f"j{len(self.joins)}", reference, parent)
        return self.joins[name][0]

    @staticmethod
    def comparable(item: FieldDef, alias: str) -> str:
        """The expression comparisons use: the folded value for text fields."""
        if item.shadowed:
            return f"{alias}.{quote_ident(shadow_column(item.name))}"
        sql = f"{alias}.{quote_ident(item.name)}"
        return f"sf_fold({sql})" if item.folded else sql

    # values ----------------------------------------------------------------------------------
    def value(self, path: FieldPath, item: FieldDef, token: Token) -> Any:
        """A literal converted to the field's stored form, or INVALID_FIELD if mistyped."""
        if token.upper == "NULL":
            return None
        kind = item.type
        if item.folded:
            if token.kind != "string":
                raise self._mistyped(token, item, quoted=True)
            return fold(token.value)
        if kind in ("id", "reference"):
            if token.kind != "string":
                raise self._mistyped(token, item, quoted=True)
            record_id = normalize_id(token.value)
            if record_id is None:
                raise _error("INVALID_QUERY_FILTER_OPERATOR", self.soql, token.pos,
                             f"invalid ID field: {token.value}")
            return record_id
        if kind == "boolean":
            if token.upper not in ("TRUE", "FALSE"):
                raise self._mistyped(token, item, quoted=False)
            return 1 if token.upper == "TRUE" else 0
        if kind == "int":
            if token.kind != "number" or not isinstance(token.value, int):
                raise self._mistyped(token, item, quoted=False)
            return token.value
        if kind in ("double", "currency", "percent"):
            if token.kind != "number":
                raise self._mistyped(token, item, quoted=False)
            return float(token.value)
        if kind in ("date", "datetime"):
            if token.kind != kind:
                raise self._mistyped(token, item, quoted=False)
            return token.value
        raise self._mistyped(token, item, quoted=False)

    def _mistyped(self, token: Token, item: FieldDef, *, quoted: bool) -> SoqlError:
        type_name = _SOAP_TYPE_NAMES.get(item.type, item.type)
        if item.folded:
            type_name = "string"
        how = "should be enclosed in quotes" if quoted else "should not be enclosed in quotes"
        return _error("INVALID_FIELD", self.soql, token.pos,
                      f"value of filter criterion for field '{item.name}' must be of type "
                      f"{type_name} and {how}")

    # conditions ------------------------------------------------------------------------------
    def condition(self, node: Condition) -> str:
        if isinstance(node, Junction):
            return "(" + f" {node.operator} ".join(self.condition(i) for i in node.items) + ")"
        if isinstance(node, Negation):
            # SQL's NOT of an unknown (NULL) is unknown; SOQL's is true.
            return f"(NOT IFNULL({self.condition(node.item)}, 0))"
        return self._comparison(node)

    def _comparison(self, node: Comparison) -> str:
        _, item, alias = self.field(node.path)
        target = self.comparable(item, alias)
        operator = node.operator
        if operator == "LIKE":
            token = node.values[0]
            if not item.folded:
                raise _error("INVALID_FIELD", self.soql, node.path.pos,
                             f"invalid operator on field '{item.name}' of type "
                             f"{_SOAP_TYPE_NAMES.get(item.type, item.type)}: LIKE applies "
                             "to text fields only")
            if token.kind != "string":
                raise self._mistyped(token, item, quoted=True)
            self.params.append(fold(str(token.like)))
            return f"({target} LIKE ? ESCAPE '\\')"
        if operator in ("IN", "NOT IN"):
            values = [self.value(node.path, item, token) for token in node.values]
            present = [v for v in values if v is not None]
            has_null = len(present) != len(values)
            if len(present) > _BIG_IN_LIST:
                self.params.append(json.dumps(present))
                members = f"{target} {_JSON_MEMBERS}"
            elif present:
                self.params.extend(present)
                members = f"{target} IN ({', '.join('?' * len(present))})"
            else:
                members = "0"
            if operator == "IN":
                return f"({members} OR {target} IS NULL)" if has_null else f"({members})"
            if has_null:
                return f"({target} IS NOT NULL AND NOT {members})"
            return f"({target} IS NULL OR NOT {members})"
        value = self.value(node.path, item, node.values[0])
        if value is None:
            if operator not in ("=", "!="):
                raise _error("INVALID_FIELD", self.soql, node.values[0].pos,
                             f"invalid operator on field '{item.name}': a null value can only "
                             "be compared with = or !=")
            return f"({target} IS {'NOT ' if operator == '!=' else ''}NULL)"
        self.params.append(value)
        if operator == "!=":
            return f"({target} IS NOT ?)"  # SOQL: `!= 'x'` also matches null
        return f"({target} {operator} ?)"

    def order(self, items: list[OrderItem]) -> str:
        parts = []
        for node in items:
            _, item, alias = self.field(node.path)
            text = self.comparable(item, alias) + (" DESC" if node.descending else " ASC")
            if node.nulls:
                text += f" NULLS {node.nulls}"
            parts.append(text)
        parts.append("t.rowid" + (" DESC" if items and items[-1].descending else " ASC"))
        return ", ".join(parts)

    def from_sql(self) -> str:
        text = f"{quote_ident(self.root.name)} AS t"
        for alias, reference, parent in self.joins.values():
            live = "" if self.include_deleted else f" AND {alias}.\"IsDeleted\" = 0"
            text += (f" LEFT JOIN {quote_ident(parent.name)} AS {alias} ON "
                     f"{alias}.\"Id\" = t.{quote_ident(reference.name)}{live}")
        return text


def _root(soql: str, token: Token, resolve: Resolver) -> ObjectDef:
    root = resolve(token.text)
    if root is None:
        raise _error("INVALID_TYPE", soql, token.pos,
                     f"sObject type '{token.text}' is not supported. If you are attempting to "
                     "use a custom object, be sure to append the '__c' after the entity name. "
                     "Please reference your WSDL or the describe call for the appropriate names.")
    return root


def compile_query(soql: str, resolve: Resolver, *, include_deleted: bool = False) -> Plan:
    """Parse and check `soql` against the objects `resolve` knows (after FLS)."""
    statement = parse(soql)
    root = _root(soql, statement.sobject, resolve)
    compiler = _Compiler(soql, resolve, root, include_deleted)
    columns: list[Column] = []
    seen: set[str] = set()
    for path in statement.fields:
        relationship, item, alias = compiler.field(path)
        column = Column(relationship, item, f"{alias}.{quote_ident(item.name)}")
        if column.path.lower() in seen:
            raise _error("MALFORMED_QUERY", soql, path.pos,
                         f"duplicate field selected: {path.text}")
        seen.add(column.path.lower())
        columns.append(column)
    where = [] if include_deleted else ['t."IsDeleted" = 0']
    if statement.where is not None:
        where.append(compiler.condition(statement.where))
    order_sql = compiler.order(statement.order)
    relationships = {name: alias for name, (alias, _, _) in compiler.joins.items()}
    return Plan(root, columns, statement.count, compiler.from_sql(),
                " AND ".join(where) or "1", compiler.params, order_sql, statement.limit,
                statement.offset, relationships)


def compile_condition(condition: str, root: ObjectDef, resolve: Resolver) -> Plan:
    """A bare WHERE condition (admin record reads); deleted rows included."""
    parser = _Parser(condition)
    node = parser.condition_only()
    compiler = _Compiler(condition, resolve, root, include_deleted=True)
    where = compiler.condition(node)
    relationships = {name: alias for name, (alias, _, _) in compiler.joins.items()}
    return Plan(root, [], False, compiler.from_sql(), where, compiler.params,
                "t.rowid ASC", None, None, relationships)
