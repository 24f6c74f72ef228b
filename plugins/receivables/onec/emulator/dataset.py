"""In-memory 1C infobase for the emulator: entity sets of rows in 1C's JSON representation.

Rows are plain dicts exactly as 1C would send them (``Edm.Int64`` as strings, empty
references as the zero GUID, dates as ``YYYY-MM-DDTHH:MM:SS``), kept sorted by the
set's natural key (``Ref_Key`` [+ ``LineNumber``]) so that unfiltered paging is a
slice. ``Dataset.rows(name)`` hands out the live list: tests may mutate rows in place
and the server serves the change; anything that changes membership or keys should go
through ``add_rows`` / ``update_rows`` / ``delete_rows``.
"""

from __future__ import annotations

import base64
import bisect
import datetime as dt
import re
import struct
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from receivables.onec.schema import (
    BOOLEAN,
    DATETIME,
    DOUBLE,
    EMPTY_DATE,
    EMPTY_GUID,
    GUID,
    INT32,
    INT64,
    READ_SETS,
    STRING,
    WRITE_SETS,
)

Row = dict[str, Any]
Where = Callable[[Row], bool] | str | Iterable[str] | Mapping[str, Any] | None

_GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_DATE_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?(?:Z|[+-]\d{2}:?\d{2})?$")

#: Extra standard fields served besides READ_SETS (1C sends them for every object).
EXTRA_FIELDS: dict[str, dict[str, str]] = {
    "Catalog_Пользователи_КонтактнаяИнформация": {"Вид_Key": GUID},
}

#: How POST assigns numbers/codes: set -> (field, prefix, digits). Lengths follow the
#: UT 11.5 metadata (Task numberLength=14, documents 11, catalog codes 11).
NUMBERING: dict[str, tuple[str, str, int]] = {
    "Task_ЗадачаИсполнителя": ("Number", "ТД00-", 9),
    "Document_CRM_Интерес": ("Number", "ТД00-", 6),
    "Catalog_СделкиСКлиентами": ("Code", "ТД-", 8),
}


def served_fields(name: str) -> dict[str, str]:
    """The full field map the emulator serves for a set: schema.py plus standard extras."""
    base = READ_SETS.get(name) or WRITE_SETS.get(name)
    if base is None:
        raise KeyError(name)
    fields: dict[str, str] = {}
    is_object = "Ref_Key" in base and "LineNumber" not in base
    for f, t in base.items():
        fields[f] = t
        if f == "Ref_Key" and is_object and "DataVersion" not in base:
            fields["DataVersion"] = STRING
    fields.update(EXTRA_FIELDS.get(name, {}))
    return fields


def empty_value(edm: str) -> Any:
    """1C's representation of an empty value of an EDM type."""
    return {
        GUID: EMPTY_GUID,
        DATETIME: EMPTY_DATE,
        BOOLEAN: False,
        DOUBLE: 0,
        INT32: 0,
        INT64: "0",
    }.get(edm, "")


def normalize_datetime(text: str) -> str | None:
    """'2026-03-20', '2026-03-20T10:15', '…T10:15:00.000Z' -> '2026-03-20T10:15:00'; None if invalid."""
    m = _DATE_RE.match(text.strip())
    if not m:
        return None
    y, mo, d, h, mi, s = (int(x) if x else 0 for x in m.groups())
    try:
        return dt.datetime(y, mo, d, h, mi, s).strftime("%Y-%m-%dT%H:%M:%S") if y > 1 else EMPTY_DATE
    except ValueError:
        return None


def coerce(edm: str, value: Any) -> tuple[bool, Any]:
    """(ok, value) for a JSON body value; like 1C, values of the wrong type are dropped."""
    if edm == GUID:
        if isinstance(value, str) and _GUID_RE.match(value):
            return True, value.lower()
        return False, None
    if edm == BOOLEAN:
        return (True, value) if isinstance(value, bool) else (False, None)
    if edm == DOUBLE:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return True, value
        return False, None
    if edm == INT32:
        if isinstance(value, int) and not isinstance(value, bool):
            return True, value
        if isinstance(value, float) and value.is_integer():
            return True, int(value)
        return False, None
    if edm == INT64:
        if isinstance(value, int) and not isinstance(value, bool):
            return True, str(value)
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return True, str(int(value))
        return False, None
    if edm == DATETIME:
        if isinstance(value, str):
            norm = normalize_datetime(value)
            return (True, norm) if norm else (False, None)
        return False, None
    # Edm.String
    if isinstance(value, str):
        return True, value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return True, str(value)
    return False, None


def data_version(n: int) -> str:
    """A DataVersion token like 1C's ('AAAAAgAAAAA=')."""
    return base64.b64encode(struct.pack(">II", n, 0)).decode()


class ConflictError(Exception):
    """An object with this key already exists (POST with a used Ref_Key)."""


class EntitySet:
    """One entity set: its field types, natural key and rows sorted by that key."""

    def __init__(self, name: str, rows: list[Row] | None = None, *, writable: bool = False,
                 fields: dict[str, str] | None = None):
        self.name = name
        self.fields = fields or served_fields(name)
        if "LineNumber" in self.fields:
            self.kind = "rows"
            self.key: tuple[str, ...] = ("Ref_Key", "LineNumber")
        elif "Ref_Key" in self.fields:
            self.kind = "object"
            self.key = ("Ref_Key",)
        else:
            self.kind = "register"
            self.key = tuple(f for f in self.fields if f.endswith("_Key")) or tuple(self.fields)
        self.writable = writable
        self.rows: list[Row] = list(rows or [])
        self.version = 0
        self.dirty = False  # the live list was handed out: re-check order before use
        self._indexes: dict[str, dict[Any, list[int]]] = {}
        self._by_key: dict[Any, Row] | None = None
        self.cache: OrderedDict[tuple, list[Row]] = OrderedDict()
        self._counter = 0
        self.rows.sort(key=self.sort_key)

    def __eq__(self, other: object) -> bool:
        """Same name, fields and rows (so two generated companies compare by content)."""
        if not isinstance(other, EntitySet):
            return NotImplemented
        return self.name == other.name and self.fields == other.fields and self.rows == other.rows

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"EntitySet({self.name!r}, {len(self.rows)} rows)"

    # -- keys ---------------------------------------------------------------------

    def sort_key(self, row: Row) -> Any:
        """Natural order: GUIDs as lower-case text, LineNumber as a number.

        Objects key on the bare Ref_Key string (cheap to sort a million of), tabular
        sections on (Ref_Key, LineNumber), registers on the tuple of their dimensions.
        """
        if self.kind == "object":
            v = row.get("Ref_Key")
            return v.lower() if isinstance(v, str) else ""
        if self.kind == "rows":
            v = row.get("Ref_Key")
            try:
                line = int(row.get("LineNumber"))
            except (TypeError, ValueError):
                line = 0
            return (v.lower() if isinstance(v, str) else "", line)
        return tuple(str(row.get(f, "")).lower() for f in self.key)

    def make_key(self, key: str | tuple) -> Any:
        """A lookup key in sort_key's form from a Ref_Key or a tuple of key values."""
        if isinstance(key, str):
            key = (key,)
        if self.kind == "object":
            return str(key[0]).lower()
        if self.kind == "rows":
            try:
                return (str(key[0]).lower(), int(key[1]))
            except (IndexError, TypeError, ValueError):
                return None
        return tuple(str(k).lower() for k in key)

    def touch(self) -> None:
        """Forget indexes and cached query results after a change."""
        self.version += 1
        self._indexes.clear()
        self._by_key = None
        self.cache.clear()

    def refresh(self) -> None:
        """After the live list was handed out: restore order, drop stale indexes."""
        if not self.dirty:
            return
        self.dirty = False
        keys = [self.sort_key(r) for r in self.rows]
        if any(keys[i] > keys[i + 1] for i in range(len(keys) - 1)):
            self.rows.sort(key=self.sort_key)
        self.touch()

    def by_key(self) -> dict[Any, Row]:
        if self._by_key is None:
            self._by_key = {self.sort_key(r): r for r in self.rows}
        return self._by_key

    def index(self, field: str) -> dict[Any, list[int]]:
        """value -> positions in the sorted rows (GUIDs lower-cased); built lazily."""
        idx = self._indexes.get(field)
        if idx is None:
            idx = {}
            lower = self.fields.get(field) == GUID
            for i, row in enumerate(self.rows):
                v = row.get(field)
                if lower and isinstance(v, str):
                    v = v.lower()
                idx.setdefault(v, []).append(i)
            self._indexes[field] = idx
        return idx

    # -- changes ------------------------------------------------------------------

    def normalize(self, row: Mapping[str, Any]) -> Row:
        """A complete row: every served field present (empty values where missing)."""
        out: Row = {}
        for f, t in self.fields.items():
            v = row.get(f, empty_value(t))
            if t == INT64 and isinstance(v, int) and not isinstance(v, bool):
                v = str(v)
            elif t == GUID and isinstance(v, str):
                v = v.lower()
            out[f] = v
        for f, v in row.items():  # keep anything extra the caller set
            out.setdefault(f, v)
        if "DataVersion" in self.fields and not out.get("DataVersion"):
            out["DataVersion"] = self.next_version()
        return out

    def next_version(self) -> str:
        self._counter += 1
        return data_version(self._counter)

    def insert(self, rows: list[Row]) -> None:
        if len(rows) > 64:
            self.rows.extend(rows)
            self.rows.sort(key=self.sort_key)
        else:
            for r in rows:
                bisect.insort(self.rows, r, key=self.sort_key)
        self.touch()

    def select(self, where: Where) -> list[Row]:
        """Rows matching a predicate, a Ref_Key, several Ref_Keys or {field: value}."""
        if where is None:
            return list(self.rows)
        if callable(where):
            return [r for r in self.rows if where(r)]
        if isinstance(where, str):
            keys = {where.lower()}
            return [r for r in self.rows if str(r.get("Ref_Key", "")).lower() in keys]
        if isinstance(where, Mapping):
            return [r for r in self.rows if all(r.get(k) == v for k, v in where.items())]
        keys = {str(k).lower() for k in where}
        return [r for r in self.rows if str(r.get("Ref_Key", "")).lower() in keys]


class Dataset:
    """A generated (or hand-built) company: entity sets plus a few handy facts."""

    def __init__(self, sets: dict[str, EntitySet], meta: dict[str, Any] | None = None,
                 truth: dict[str, Any] | None = None):
        self.sets = sets
        self.meta = meta or {}
        #: what the generator intended (e.g. kopecks paid per order by posted receipts)
        self.truth = truth or {}
        self.lock = threading.RLock()

    @property
    def end_date(self) -> dt.date | None:
        """The last day of the generated history (no payment is dated after it)."""
        return self.meta.get("end_date")

    @classmethod
    def from_rows(cls, rows: Mapping[str, list[Row]], *, meta: dict[str, Any] | None = None,
                  truth: dict[str, Any] | None = None) -> Dataset:
        """Every READ_SETS/WRITE_SETS set, filled from ``rows`` (missing sets empty)."""
        sets: dict[str, EntitySet] = {}
        for name in list(READ_SETS) + list(WRITE_SETS):
            sets[name] = EntitySet(name, rows.get(name, []), writable=name in WRITE_SETS)
        return cls(sets, meta, truth)

    # -- reading ------------------------------------------------------------------

    def names(self) -> list[str]:
        return list(self.sets)

    def entity(self, name: str) -> EntitySet:
        try:
            return self.sets[name]
        except KeyError:
            raise KeyError(f"no entity set {name!r} in the dataset") from None

    def rows(self, name: str) -> list[Row]:
        """The live, sorted row list of a set (mutate rows in place; use add_rows to add)."""
        with self.lock:
            ent = self.entity(name)
            ent.dirty = True
            return ent.rows

    def count(self, name: str) -> int:
        return len(self.entity(name).rows)

    def get(self, name: str, key: str | tuple) -> Row | None:
        """One row by Ref_Key (or by the full natural key tuple)."""
        with self.lock:
            ent = self.entity(name)
            ent.refresh()
            return ent.by_key().get(ent.make_key(key))

    def lookup(self, name: str, field: str, value: Any) -> list[Row]:
        """Rows whose ``field`` equals ``value`` (indexed)."""
        with self.lock:
            ent = self.entity(name)
            ent.refresh()
            if ent.fields.get(field) == GUID and isinstance(value, str):
                value = value.lower()
            return [ent.rows[i] for i in ent.index(field).get(value, [])]

    # -- changes ------------------------------------------------------------------

    def add_rows(self, name: str, rows: Iterable[Mapping[str, Any]]) -> list[Row]:
        """Insert rows (completed with empty values) keeping the natural order."""
        with self.lock:
            ent = self.entity(name)
            ent.refresh()
            new = [ent.normalize(r) for r in rows]
            ent.insert(new)
            return new

    def update_rows(self, name: str, where: Where, changes: Mapping[str, Any] | Callable[[Row], None]) -> int:
        """Apply ``changes`` (a dict or a function of the row) to matching rows; returns how many."""
        with self.lock:
            ent = self.entity(name)
            ent.refresh()
            hit = ent.select(where)
            for r in hit:
                if callable(changes):
                    changes(r)
                else:
                    r.update(changes)
                if "DataVersion" in ent.fields:
                    r["DataVersion"] = ent.next_version()
            if hit:
                if any(k in ent.key for k in (changes if isinstance(changes, Mapping) else ent.key)):
                    ent.rows.sort(key=ent.sort_key)
                ent.touch()
            return len(hit)

    def delete_rows(self, name: str, where: Where) -> int:
        """Remove matching rows; returns how many."""
        with self.lock:
            ent = self.entity(name)
            ent.refresh()
            gone = {id(r) for r in ent.select(where)}
            if gone:
                ent.rows[:] = [r for r in ent.rows if id(r) not in gone]
                ent.touch()
            return len(gone)

    # -- OData writes ---------------------------------------------------------------

    def create(self, name: str, body: Mapping[str, Any]) -> Row:
        """POST semantics: coerce the body, keep a client Ref_Key, number it, stamp it."""
        with self.lock:
            ent = self.entity(name)
            ent.refresh()
            row: Row = {}
            for f, v in body.items():
                t = ent.fields.get(f)
                if t is None or f in ("DataVersion",):
                    continue  # unknown fields are silently ignored, like 1C
                ok, val = coerce(t, v)
                if ok:
                    row[f] = val
            ref = row.get("Ref_Key")
            if not ref or ref == EMPTY_GUID:
                ref = row["Ref_Key"] = str(uuid.uuid4())
            if ent.by_key().get(ent.make_key(ref)) is not None:
                raise ConflictError(ref)
            numbering = NUMBERING.get(name)
            if numbering and not str(row.get(numbering[0], "")).strip():
                field, prefix, digits = numbering
                row[field] = f"{prefix}{self._next_number(ent, field, prefix):0{digits}d}"
            if "Date" in ent.fields and row.get("Date", EMPTY_DATE) == EMPTY_DATE:
                row["Date"] = dt.datetime.now().strftime("%Y-%m-%dT%H:%M:%S")
            new = ent.normalize(row)
            ent.insert([new])
            return new

    def patch(self, name: str, ref: str, body: Mapping[str, Any]) -> Row | None:
        """PATCH semantics: partial update of one object; None if it does not exist."""
        with self.lock:
            ent = self.entity(name)
            ent.refresh()
            row = ent.by_key().get(ent.make_key(ref))
            if row is None:
                return None
            for f, v in body.items():
                t = ent.fields.get(f)
                if t is None or f in ("Ref_Key", "DataVersion"):
                    continue
                ok, val = coerce(t, v)
                if ok:
                    row[f] = val
            if "DataVersion" in ent.fields:
                row["DataVersion"] = ent.next_version()
            ent.touch()
            return row

    @staticmethod
    def _next_number(ent: EntitySet, field: str, prefix: str) -> int:
        top = 0
        for r in ent.rows:
            v = str(r.get(field, ""))
            if v.startswith(prefix) and v[len(prefix):].strip().isdigit():
                top = max(top, int(v[len(prefix):]))
        return top + 1
