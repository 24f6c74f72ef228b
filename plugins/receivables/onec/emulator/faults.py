"""Fault switches and the request log of the emulator.

A fault matches requests by entity set and method; the first ``after`` matching
requests pass untouched, then it fires ``times`` times (``None`` = forever). ``gone``
and ``unauthorized`` are states, not events: once they fire they stay until cleared,
and they apply to every method. Requests a fault cannot apply to (e.g. a ``$count``
for ``duplicate_rows``) do not count towards ``after``/``times``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

#: kind -> what it does
FAULT_KINDS: dict[str, str] = {
    "status": "answer HTTP `status` (500/502/503…) with a 1C-like body",
    "delay": "sleep `seconds` before answering normally",
    "reset": "close the connection abruptly (TCP RST) without answering",
    "malformed_json": "HTTP 200 whose JSON body is syntactically broken",
    "truncated_json": "HTTP 200 whose JSON body stops half-way (`lie_length`: declare the full length)",
    "odata_error_200": "HTTP 200 whose body is an odata.error",
    "duplicate_rows": "the page starts with `rows` rows of the previous page (as if rows were inserted)",
    "gone": "404 code 9 for the set from now on (publication changed)",
    "unauthorized": "401 from now on (password changed)",
    "post_500_after_create": "POST creates the object but answers 500",
    "charset_1251": "Content-Type says windows-1251 while the body stays UTF-8",
}
STATEFUL = {"gone", "unauthorized"}
#: kinds that only make sense for an answer carrying JSON
JSON_ONLY = {"malformed_json", "truncated_json", "odata_error_200", "charset_1251"}


@dataclass
class Fault:
    """One armed fault switch."""

    id: int
    kind: str
    entity_set: str | None = None
    method: str | None = "GET"
    times: int | None = 1
    after: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    seen: int = 0
    fired: int = 0

    @property
    def exhausted(self) -> bool:
        if self.kind in STATEFUL:
            return False
        return self.times is not None and self.fired >= self.times

    def matches(self, entity_set: str | None, method: str) -> bool:
        if self.entity_set is not None and self.entity_set != entity_set:
            return False
        if self.kind in STATEFUL or self.method in (None, "*", "ANY"):
            return True
        return self.method.upper() == method.upper()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RequestContext:
    """What a fault needs to know about a request to decide whether it applies."""

    method: str
    entity_set: str | None
    resource: str  # collection | count | entity | metadata | service | write
    json: bool = False
    skip: int = 0


def applies(fault: Fault, ctx: RequestContext) -> bool:
    kind = fault.kind
    if kind == "post_500_after_create":
        return ctx.method == "POST" and ctx.resource == "write"
    if kind == "duplicate_rows":
        return ctx.method == "GET" and ctx.resource == "collection" and ctx.skip > 0
    if kind in JSON_ONLY:
        return ctx.json
    return True


class FaultRegistry:
    """Thread-safe list of fault switches (``srv.faults``)."""

    def __init__(self) -> None:
        self._items: list[Fault] = []
        self._lock = threading.Lock()
        self._next = 1

    def add(self, kind: str, *, entity_set: str | None = None, method: str | None = "GET",
            times: int | None = 1, after: int = 0, **params: Any) -> Fault:
        """Arm a fault; see FAULT_KINDS for kinds and their params."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")
        if kind == "status":
            status = int(params.setdefault("status", 500))
            if not 400 <= status <= 599:
                raise ValueError("a status fault needs an HTTP error status (400-599)")
        if kind == "delay":
            params["seconds"] = float(params.get("seconds", 1.0))
        if kind == "post_500_after_create" and (method or "GET").upper() == "GET":
            method = "POST"
        if times is not None and times <= 0:
            times = None
        with self._lock:
            fault = Fault(self._next, kind, entity_set, method, times, int(after), dict(params))
            self._next += 1
            self._items.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def remove(self, fault_id: int) -> bool:
        with self._lock:
            before = len(self._items)
            self._items = [f for f in self._items if f.id != fault_id]
            return len(self._items) != before

    def list(self) -> list[Fault]:
        with self._lock:
            return list(self._items)

    def __len__(self) -> int:
        return len(self.list())

    def take(self, ctx: RequestContext) -> list[Fault]:
        """The faults that fire for this request (counting it against each match)."""
        fired: list[Fault] = []
        with self._lock:
            for f in self._items:
                if f.exhausted or not f.matches(ctx.entity_set, ctx.method) or not applies(f, ctx):
                    continue
                f.seen += 1
                if f.seen <= f.after:
                    continue
                f.fired += 1
                fired.append(f)
        return fired


@dataclass(frozen=True)
class LoggedRequest:
    """One request as the emulator saw it (path unquoted, query raw as sent)."""

    method: str
    path: str
    query: str
    status: int
    entity_set: str | None = None
    fault: str | None = None
    body: str | None = None
    at: float = 0.0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class RequestLog:
    """Thread-safe, list-like log of every OData request (``srv.requests``)."""

    def __init__(self) -> None:
        self._items: list[LoggedRequest] = []
        self._lock = threading.Lock()

    def append(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._items.append(entry)

    def snapshot(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __iter__(self) -> Iterator[LoggedRequest]:
        return iter(self.snapshot())

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __bool__(self) -> bool:
        return len(self) > 0

    def __getitem__(self, index: int | slice) -> Any:
        with self._lock:
            return self._items[index]

    def count(self, method: str | None = None, entity_set: str | None = None) -> int:
        """How many requests had this method and/or entity set."""
        return sum(1 for r in self.snapshot()
                   if (method is None or r.method == method) and (entity_set is None or r.entity_set == entity_set))


def now() -> float:
    return time.time()
