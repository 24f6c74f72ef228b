"""The `$filter` subset 1C supports, compiled to a Python predicate over a JSON row.

Operators eq ne gt ge lt le and or not, parentheses; literals guid'…', datetime'…',
'text' (quotes doubled), true/false, numbers; functions substringof, startswith,
endswith. A malformed filter raises :class:`FilterError` (1C answers 400, code 14).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Row = dict[str, Any]
Pred = Callable[[Row], Any]


class FilterError(ValueError):
    pass


_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<guid>guid'[0-9a-fA-F-]{36}')
  | (?P<datetime>datetime'[0-9T:.\-]+')
  | (?P<string>'(?:[^']|'')*')
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
  | (?P<name>[^\s(),']+)
""", re.VERBOSE)

_CMP = {"eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "gt": lambda a, b: a > b,
        "ge": lambda a, b: a >= b, "lt": lambda a, b: a < b, "le": lambda a, b: a <= b}


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise FilterError(f"unexpected character at {pos}: {text[pos:pos + 10]!r}")
        pos = m.end()
        if m.lastgroup != "ws":
            out.append((m.lastgroup, m.group()))
    return out


def _norm(value: Any) -> Any:
    """Compare like 1C: GUIDs case-insensitively, Int64-as-text as numbers."""
    if isinstance(value, str):
        if re.fullmatch(r"-?\d+", value):
            return int(value)
        return value.lower() if re.fullmatch(r"[0-9a-fA-F-]{36}", value) else value
    return value


class _Parser:
    def __init__(self, text: str, fields: set[str]):
        self.toks = _tokens(text)
        self.i = 0
        self.fields = fields

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, kind: str | None = None, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok is None or (kind and tok[0] != kind) or (value and tok[1] != value):
            raise FilterError(f"expected {value or kind}, got {tok[1] if tok else 'end of filter'}")
        self.i += 1
        return tok

    def parse(self) -> Pred:
        pred = self.or_()
        if self.peek() is not None:
            raise FilterError(f"unexpected {self.peek()[1]!r}")
        return pred

    def or_(self) -> Pred:
        left = self.and_()
        while self.peek() == ("name", "or"):
            self.take()
            right = self.and_()
            left = (lambda a, b: lambda r: bool(a(r)) or bool(b(r)))(left, right)
        return left

    def and_(self) -> Pred:
        left = self.not_()
        while self.peek() == ("name", "and"):
            self.take()
            right = self.not_()
            left = (lambda a, b: lambda r: bool(a(r)) and bool(b(r)))(left, right)
        return left

    def not_(self) -> Pred:
        if self.peek() == ("name", "not"):
            self.take()
            inner = self.not_()
            return lambda r: not inner(r)
        return self.cmp()

    def cmp(self) -> Pred:
        left = self.primary()
        tok = self.peek()
        if tok and tok[0] == "name" and tok[1] in _CMP:
            self.take()
            right = self.primary()
            op = _CMP[tok[1]]

            def compare(r: Row) -> bool:
                a, b = _norm(left(r)), _norm(right(r))
                try:
                    return op(a, b)
                except TypeError:
                    return False
            return compare
        return left

    def primary(self) -> Pred:
        kind, text = self.take()
        if kind == "lparen":
            inner = self.or_()
            self.take("rparen")
            return inner
        if kind == "guid":
            v = text[5:-1].lower()
            return lambda r: v
        if kind == "datetime":
            v = text[9:-1]
            v = v if "T" in v else v + "T00:00:00"
            return lambda r: v
        if kind == "string":
            v = text[1:-1].replace("''", "'")
            return lambda r: v
        if kind == "number":
            num = float(text) if "." in text else int(text)
            return lambda r: num
        if kind == "name":
            if text in ("true", "false"):
                b = text == "true"
                return lambda r: b
            if self.peek() == ("lparen", "("):
                return self.function(text)
            if text not in self.fields:
                raise FilterError(f"unknown field {text!r}")
            return lambda r: r.get(text)
        raise FilterError(f"unexpected {text!r}")

    def function(self, name: str) -> Pred:
        self.take("lparen")
        a = self.or_()
        self.take("comma")
        b = self.or_()
        self.take("rparen")
        funcs = {
            "substringof": lambda r: str(a(r)) in str(b(r)),
            "startswith": lambda r: str(a(r)).startswith(str(b(r))),
            "endswith": lambda r: str(a(r)).endswith(str(b(r))),
        }
        if name not in funcs:
            raise FilterError(f"unknown function {name!r}")
        return funcs[name]


def compile_filter(text: str, fields: set[str]) -> Pred:
    return _Parser(text, fields).parse()
