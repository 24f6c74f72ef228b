"""The `$filter`, `$orderby` and `$select` subset that 1C's standard OData understands.

`$filter` is parsed into a small AST, type-checked against the set's EDM types (1C
rejects comparing a GUID field with a plain string) and compiled into a Python
predicate over rows in 1C's JSON representation. Errors carry 1C's codes: ``14`` for
a malformed expression, ``6`` for an unknown field or function. String functions
(substringof, startswith, endswith) ignore case like 1C's ПОДОБНО; ``eq`` does not.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from receivables.onec.emulator.dataset import normalize_datetime
from receivables.onec.schema import BOOLEAN, DATETIME, DOUBLE, GUID, INT32, INT64

Row = dict[str, Any]


class QueryError(Exception):
    """A query option 1C would reject: HTTP status, odata.error code, Russian message."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


FilterError = QueryError  # the name the first emulator used


def bad_filter(message: str) -> QueryError:
    return QueryError("14", f"Неправильный формат параметра $filter: {message}")


def unknown_field(name: str, entity_set: str) -> QueryError:
    return QueryError("6", f"Не найдено свойство '{name}' сущности '{entity_set}'")


# -- tokens ---------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<guid>guid'(?P<guid_v>[^']*)')
  | (?P<datetime>datetime'(?P<datetime_v>[^']*)')
  | (?P<string>'(?P<string_v>(?:[^']|'')*)')
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?[mMdDfFlL]?)
  | (?P<lp>\()
  | (?P<rp>\))
  | (?P<comma>,)
  | (?P<name>[^\W\d][\w]*(?:/[^\W\d][\w]*)*)
    """,
    re.VERBOSE | re.UNICODE,
)
_GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_COMPARE = {"eq", "ne", "gt", "ge", "lt", "le"}
_KEYWORDS = _COMPARE | {"and", "or", "not", "true", "false", "null"}
_SHOW = {"rp": ")", "lp": "(", "comma": ","}


def tokenize(text: str) -> list[tuple[str, Any]]:
    """(kind, value) tokens; kinds: guid datetime string number lp rp comma name kw."""
    out: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise bad_filter(f"неожиданный символ '{text[pos]}' в позиции {pos + 1}")
        pos = m.end()
        kind = m.lastgroup
        if kind in ("ws", None):
            continue
        if kind == "guid":
            v = m.group("guid_v")
            if not _GUID_RE.match(v):
                raise bad_filter(f"неправильный литерал guid'{v}'")
            out.append(("guid", v.lower()))
        elif kind == "datetime":
            v = normalize_datetime(m.group("datetime_v"))
            if v is None:
                raise bad_filter(f"неправильный литерал datetime'{m.group('datetime_v')}'")
            out.append(("datetime", v))
        elif kind == "string":
            out.append(("string", m.group("string_v").replace("''", "'")))
        elif kind == "number":
            raw = m.group("number").rstrip("mMdDfFlL")
            out.append(("number", float(raw) if any(c in raw for c in ".eE") else int(raw)))
        elif kind == "name":
            word = m.group("name")
            out.append(("kw", word) if word in _KEYWORDS else ("name", word))
        else:
            out.append((kind, m.group(kind)))
    return out


# -- parser -------------------------------------------------------------------------
# AST: ("lit", type, value) | ("field", name) | ("call", name, [args]) | ("cmp", op, a, b)
#      | ("and", a, b) | ("or", a, b) | ("not", a)


class _Parser:
    def __init__(self, tokens: list[tuple[str, Any]]):
        self.t = tokens
        self.i = 0

    def peek(self) -> tuple[str, Any] | None:
        return self.t[self.i] if self.i < len(self.t) else None

    def take(self) -> tuple[str, Any]:
        tok = self.peek()
        if tok is None:
            raise bad_filter("неожиданный конец выражения")
        self.i += 1
        return tok

    def expect(self, kind: str) -> None:
        tok = self.take()
        if tok[0] != kind:
            raise bad_filter(f"ожидалось '{_SHOW.get(kind, kind)}', получено '{tok[1]}'")

    def parse(self) -> tuple:
        node = self.or_expr()
        tok = self.peek()
        if tok is not None:
            raise bad_filter(f"лишний текст после выражения: '{tok[1]}'")
        return node

    def or_expr(self) -> tuple:
        node = self.and_expr()
        while self.peek() == ("kw", "or"):
            self.take()
            node = ("or", node, self.and_expr())
        return node

    def and_expr(self) -> tuple:
        node = self.unary()
        while self.peek() == ("kw", "and"):
            self.take()
            node = ("and", node, self.unary())
        return node

    def unary(self) -> tuple:
        if self.peek() == ("kw", "not"):
            self.take()
            return ("not", self.unary())
        return self.comparison()

    def comparison(self) -> tuple:
        left = self.primary()
        tok = self.peek()
        if tok and tok[0] == "kw" and tok[1] in _COMPARE:
            self.take()
            return ("cmp", tok[1], left, self.primary())
        return left

    def primary(self) -> tuple:
        kind, value = self.take()
        if kind == "lp":
            node = self.or_expr()
            self.expect("rp")
            return node
        if kind in ("guid", "datetime", "string", "number"):
            return ("lit", kind, value)
        if kind == "kw" and value in ("true", "false"):
            return ("lit", "bool", value == "true")
        if kind == "kw" and value == "null":
            return ("lit", "null", None)
        if kind == "name":
            if self.peek() == ("lp", "("):
                self.take()
                args: list[tuple] = []
                if self.peek() != ("rp", ")"):
                    args.append(self.or_expr())
                    while self.peek() == ("comma", ","):
                        self.take()
                        args.append(self.or_expr())
                self.expect("rp")
                return ("call", value, args)
            return ("field", value)
        raise bad_filter(f"неожиданная лексема '{value}'")


def parse_filter(text: str) -> tuple:
    """The AST of a `$filter` expression (QueryError code 14 if malformed)."""
    if not text.strip():
        raise bad_filter("пустое выражение")
    return _Parser(tokenize(text)).parse()


# -- compiler -----------------------------------------------------------------------

_EDM_KIND = {GUID: "guid", DATETIME: "datetime", BOOLEAN: "bool", DOUBLE: "number", INT32: "number",
             INT64: "number"}
_STRINGY = {"string", "guid"}


def _getter(field: str, edm: str) -> Callable[[Row], Any]:
    if edm == INT64:
        def get_int(row: Row) -> Any:
            v = row.get(field)
            try:
                return int(v)
            except (TypeError, ValueError):
                return None
        return get_int
    if edm == GUID:
        def get_guid(row: Row) -> Any:
            v = row.get(field)
            return v.lower() if isinstance(v, str) else v
        return get_guid
    return lambda row: row.get(field)


_FUNCS: dict[str, tuple[tuple[str, ...], str]] = {
    # name: (argument kinds, result kind); "text" accepts string or guid
    "substringof": (("text", "text"), "bool"),
    "startswith": (("text", "text"), "bool"),
    "endswith": (("text", "text"), "bool"),
    "tolower": (("text",), "string"),
    "toupper": (("text",), "string"),
    "trim": (("text",), "string"),
    "length": (("text",), "number"),
    "year": (("datetime",), "number"),
    "month": (("datetime",), "number"),
    "day": (("datetime",), "number"),
    "hour": (("datetime",), "number"),
    "cast": (("any", "string"), "any"),
}
_PARTS = {"year": slice(0, 4), "month": slice(5, 7), "day": slice(8, 10), "hour": slice(11, 13)}


def _s(v: Any) -> str:
    return v if isinstance(v, str) else ""


def _compare(op: str, a: Any, b: Any) -> bool:
    if op == "eq":
        return a == b
    if op == "ne":
        return a != b
    if a is None or b is None:
        return False
    try:
        if op == "gt":
            return a > b
        if op == "ge":
            return a >= b
        if op == "lt":
            return a < b
        return a <= b
    except TypeError:
        return False


def compile_filter(text: str, fields: dict[str, str], entity_set: str
                   ) -> tuple[Callable[[Row], bool], tuple]:
    """(predicate, ast) for a `$filter` over a set with these field types."""
    ast = parse_filter(text)

    def comp(node: tuple) -> tuple[Callable[[Row], Any], str]:
        tag = node[0]
        if tag == "lit":
            value = node[2]
            return (lambda row: value), node[1]
        if tag == "field":
            name = node[1]
            if name not in fields:
                raise unknown_field(name, entity_set)
            edm = fields[name]
            return _getter(name, edm), _EDM_KIND.get(edm, "string")
        if tag in ("and", "or"):
            (fa, ka), (fb, kb) = comp(node[1]), comp(node[2])
            if ka != "bool" or kb != "bool":
                raise bad_filter(f"операнды '{tag}' должны быть логическими")
            if tag == "and":
                return (lambda row: bool(fa(row)) and bool(fb(row))), "bool"
            return (lambda row: bool(fa(row)) or bool(fb(row))), "bool"
        if tag == "not":
            fa, ka = comp(node[1])
            if ka != "bool":
                raise bad_filter("операнд 'not' должен быть логическим")
            return (lambda row: not fa(row)), "bool"
        if tag == "cmp":
            return compile_cmp(node)
        return compile_call(node)

    def compile_cmp(node: tuple) -> tuple[Callable[[Row], Any], str]:
        op, left, right = node[1], node[2], node[3]
        (fa, ka), (fb, kb) = comp(left), comp(right)
        if "null" in (ka, kb):
            if op not in ("eq", "ne"):
                raise bad_filter("null можно сравнивать только через eq/ne")
        elif "any" in (ka, kb) or ka == kb:
            pass
        elif {ka, kb} == {"guid", "string"}:
            # a composite-type field (Edm.String) may be compared with guid'…';
            # a GUID field with a plain 'text' is a type mismatch in 1C
            guid_side = left if ka == "guid" else right
            if guid_side[0] == "field":
                raise bad_filter("несоответствие типов: поле типа Edm.Guid сравнивается со строкой; "
                                 "используйте guid'…'")
        else:
            raise bad_filter(f"несоответствие типов при сравнении ({ka} {op} {kb})")
        if left[0] == "field" and right[0] == "lit":
            value = right[2]
            if op == "eq":
                return (lambda row: fa(row) == value), "bool"
            return (lambda row: _compare(op, fa(row), value)), "bool"
        return (lambda row: _compare(op, fa(row), fb(row))), "bool"

    def compile_call(node: tuple) -> tuple[Callable[[Row], Any], str]:
        name, args = node[1], node[2]
        spec = _FUNCS.get(name)
        if spec is None:
            raise QueryError("6", f"Неизвестный метод '{name}'")
        kinds, result = spec
        if len(args) != len(kinds):
            raise bad_filter(f"метод '{name}' ожидает аргументов: {len(kinds)}")
        compiled = [comp(a) for a in args]
        for (_, k), want in zip(compiled, kinds, strict=True):
            if want == "text" and k not in _STRINGY:
                raise bad_filter(f"аргумент метода '{name}' должен быть строкой")
            if want == "datetime" and k != "datetime":
                raise bad_filter(f"аргумент метода '{name}' должен быть датой")
        fs = [f for f, _ in compiled]
        if name == "substringof":
            a, b = fs
            return (lambda row: _s(a(row)).lower() in _s(b(row)).lower()), result
        if name == "startswith":
            a, b = fs
            return (lambda row: _s(a(row)).lower().startswith(_s(b(row)).lower())), result
        if name == "endswith":
            a, b = fs
            return (lambda row: _s(a(row)).lower().endswith(_s(b(row)).lower())), result
        if name == "tolower":
            return (lambda row: _s(fs[0](row)).lower()), result
        if name == "toupper":
            return (lambda row: _s(fs[0](row)).upper()), result
        if name == "trim":
            return (lambda row: _s(fs[0](row)).strip()), result
        if name == "length":
            return (lambda row: len(_s(fs[0](row)))), result
        if name in _PARTS:
            part = _PARTS[name]
            return (lambda row: int(_s(fs[0](row))[part] or 0)), result
        # cast(value, 'Type'): the value itself (composite references compare as GUID text)
        return fs[0], compiled[0][1]

    pred, kind = comp(ast)
    if kind != "bool":
        raise bad_filter("выражение должно быть логическим")
    return pred, ast


def candidate_values(ast: tuple, fields: dict[str, str]) -> tuple[str, set] | None:
    """(field, values) when the filter can only match rows whose field is one of values.

    Lets the server answer `Ref_Key eq guid'…' or …` chains and `Партнер_Key eq …`
    filters from an index instead of scanning a million rows.
    """
    tag = ast[0]
    if tag == "cmp" and ast[1] == "eq":
        a, b = ast[2], ast[3]
        if a[0] == "lit":
            a, b = b, a
        if a[0] == "field" and b[0] == "lit" and b[1] in ("guid", "string", "bool"):
            edm = fields.get(a[1])
            if edm is None or edm in (DOUBLE, INT32, INT64, DATETIME):
                return None
            value = b[2].lower() if edm == GUID and isinstance(b[2], str) else b[2]
            return a[1], {value}
        return None
    if tag == "or":
        left, right = candidate_values(ast[1], fields), candidate_values(ast[2], fields)
        if left and right and left[0] == right[0]:
            return left[0], left[1] | right[1]
        return None
    if tag == "and":
        left, right = candidate_values(ast[1], fields), candidate_values(ast[2], fields)
        if left and right:
            return left if len(left[1]) <= len(right[1]) else right
        return left or right
    return None


# -- $orderby / $select -------------------------------------------------------------

def parse_orderby(text: str, fields: dict[str, str], entity_set: str) -> list[tuple[str, bool]]:
    """[(field, descending)] from 'A, B desc'."""
    out: list[tuple[str, bool]] = []
    for part in text.split(","):
        words = part.split()
        if not words:
            continue
        if len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
            raise QueryError("14", f"Неправильный формат параметра $orderby: '{part.strip()}'")
        if words[0] not in fields:
            raise unknown_field(words[0], entity_set)
        out.append((words[0], len(words) == 2 and words[1].lower() == "desc"))
    return out


def sort_rows(rows: list[Row], order: list[tuple[str, bool]], fields: dict[str, str]) -> list[Row]:
    """Rows sorted by (field, desc) keys; LineNumber and other Int64 numerically; stable."""
    out = list(rows)
    for name, desc in reversed(order):
        get = _getter(name, fields[name])

        def key(row: Row, get: Callable[[Row], Any] = get) -> tuple:
            v = get(row)
            return (v is not None, v if v is not None else 0)
        try:
            out.sort(key=key, reverse=desc)
        except TypeError:  # mixed types after a careless edit: fall back to text
            out.sort(key=lambda r, get=get: str(get(r)), reverse=desc)
    return out


def parse_select(text: str, fields: dict[str, str], entity_set: str) -> list[str]:
    """Field names of a `$select` ('*' = every published field)."""
    out: list[str] = []
    for part in text.split(","):
        name = part.strip()
        if not name:
            continue
        if name == "*":
            return list(fields)
        if name not in fields:
            raise unknown_field(name, entity_set)
        if name not in out:
            out.append(name)
    return out or list(fields)
