"""HTTP client for the 1C:Enterprise standard OData interface (v3), with 1C's quirks.

Plain `requests`, no Airflow: the hook in `hook.py` builds it from the `onec_default`
connection, the CLI and tests build it directly. What it does that a generic OData
client does not:

- builds the query string itself: spaces as ``%20`` (a ``+`` gets HTTP 500 from a real
  УТ 11), Cyrillic percent-encoded as UTF-8;
- always ``$format=json`` and an explicit ``$select``;
- pages with ``$top``/``$skip`` under a stable ``$orderby`` until a short page (1C has
  no ``nextLink``);
- decodes bodies as UTF-8 from bytes whatever the Content-Type says (IIS says 1251);
- retries GETs on 500/502/503/504, timeouts and resets with capped exponential backoff;
- turns ``odata.error`` bodies, 401 and 404 into one-line exceptions.
"""

from __future__ import annotations

import base64
import codecs
import json
import logging
import random
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter
from typing import Any
from urllib.parse import quote

import msgspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import requests

from receivables.prefetch import read_ahead

log = logging.getLogger(__name__)

PUBLISH_HINT = (
    "publish it in 1C: «Администрирование» → «Настройка стандартного интерфейса OData» "
    "(or УстановитьСоставСтандартногоИнтерфейсаOData)"
)
RETRY_STATUSES = frozenset({500, 502, 503, 504})


class ODataError(Exception):
    """An answer from 1C that the pipeline cannot use; the message is one readable line."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


class ODataAuthError(ODataError):
    """401: the 1C user or password is wrong, or the user has no OData rights."""


class ODataNotFound(ODataError):
    """404: an entity set or object that the publication does not have."""


class ODataBadRequest(ODataError):
    """400: 1C rejected the query (unknown field code 6, bad $filter code 14)."""


class ODataServerError(ODataError):
    """5xx or a transport failure that persisted through every retry."""


class ODataProtocolError(ODataError):
    """A 2xx answer whose body is not the JSON 1C should send (truncated, malformed)."""


class NotPublished(ODataError):
    """The publication lacks entity sets or fields the pipeline needs."""

    def __init__(self, missing_sets: list[str], missing_fields: dict[str, list[str]]):
        parts = []
        if missing_sets:
            parts.append("entity sets not published: " + ", ".join(missing_sets))
        for name, fields in missing_fields.items():
            parts.append(f"{name} lacks fields: {', '.join(fields)}")
        super().__init__("1C OData: " + "; ".join(parts) + "; " + PUBLISH_HINT, status=404)
        self.missing_sets = missing_sets
        self.missing_fields = missing_fields


@dataclass(frozen=True)
class ODataConfig:
    """Where and how to reach one 1C publication."""

    base_url: str  # e.g. http://host:80/trade/odata/standard.odata
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 60.0
    page_size: int = 5000
    max_retries: int = 5
    backoff: float = 1.0
    backoff_cap: float = 30.0
    infobase: str = "default"


def odata_literal(value: Any) -> str:
    """A Python value as a 1C OData literal (guid'…', datetime'…', 'text', true)."""
    import datetime as dt
    import uuid

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, uuid.UUID):
        return f"guid'{value}'"
    if isinstance(value, dt.datetime):
        return f"datetime'{value.replace(tzinfo=None).isoformat(timespec='seconds')}'"
    if isinstance(value, dt.date):
        return f"datetime'{value.isoformat()}T00:00:00'"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value).replace("'", "''")
    return f"'{text}'"


def build_query(params: Mapping[str, Any]) -> str:
    """The query string 1C accepts: UTF-8 percent-encoding, spaces as %20, never '+'."""
    pairs = []
    for key, value in params.items():
        if value is None:
            continue
        pairs.append(f"{quote(key, safe='$')}={quote(str(value), safe=',()$:*')}")
    return "&".join(pairs)


def _error_text(body: bytes) -> tuple[str | None, str]:
    """(code, message) from an odata.error body, or the start of whatever came instead."""
    try:
        doc = json.loads(body.decode("utf-8-sig"))
        err = doc["odata.error"]
        message = err.get("message", {})
        text = message.get("value") if isinstance(message, dict) else str(message)
        return str(err.get("code")), " ".join(str(text).split())
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
        snippet = body[:200].decode("utf-8", errors="replace")
        return None, " ".join(snippet.split()) or "(empty body)"


class ODataClient:
    """Reads and writes one 1C publication."""

    def __init__(self, config: ODataConfig, *, session: requests.Session | None = None):
        self.config = config
        self.base_url = config.base_url.rstrip("/")
        self.session = session or requests.Session()
        self.session.headers["Accept"] = "application/json"
        if config.login:
            # requests would encode a Cyrillic login as latin-1 and fail; 1C wants UTF-8.
            token = f"{config.login}:{config.password or ''}".encode()
            self.session.headers["Authorization"] = "Basic " + base64.b64encode(token).decode()
        self._metadata: dict[str, dict[str, str]] | None = None

    # -- plumbing -----------------------------------------------------------------

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> ODataClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        query = build_query(params or {})
        return f"{self.base_url}/{quote(path, safe='/()$,:=')}" + (f"?{query}" if query else "")

    def _raise_for(self, resp: requests.Response, what: str) -> None:
        code, text = _error_text(resp.content)
        status = resp.status_code
        where = f"1C OData {what}: HTTP {status}"
        if code:
            where += f" (code {code})"
        if status == 401:
            raise ODataAuthError(
                f"{where}: 1C refused the credentials of user {self.config.login!r}; "
                "check login and password of the connection and the user's OData rights",
                status=status,
                code=code,
            )
        if status == 404:
            raise ODataNotFound(f"{where}: {text}; if it is an entity set, {PUBLISH_HINT}",
                                status=status, code=code)
        if 400 <= status < 500:
            raise ODataBadRequest(f"{where}: {text}", status=status, code=code)
        raise ODataServerError(f"{where}: {text}", status=status, code=code)

    def _request(self, method: str, path: str, params: Mapping[str, Any] | None = None, *,
                 body: Any = None, retry: bool = True) -> requests.Response:
        url = self.url(path, params)
        attempts = self.config.max_retries + 1 if retry else 1
        data = None
        headers = {}
        if body is not None:
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            headers["Content-Type"] = "application/json;charset=utf-8"
        last: str = ""
        for attempt in range(attempts):
            try:
                resp = self.session.request(method, url, data=data, headers=headers,
                                            timeout=self.config.timeout, stream=True)
                # What `resp.content` does, in one read instead of requests' 10 KB chunks,
                # which cost ~10% of reading a 5000-row page (issue 8 benchmark). Read
                # errors surface here, inside the retry, as they did inside request().
                resp._content = b"".join(resp.iter_content(chunk_size=None))
            except (requests.Timeout, requests.ConnectionError) as exc:
                last = f"{type(exc).__name__}: {_short(exc)}"
            else:
                if resp.status_code not in RETRY_STATUSES:
                    return resp
                code, text = _error_text(resp.content)
                last = f"HTTP {resp.status_code}" + (f" (code {code})" if code else "") + f": {text}"
                if attempt == attempts - 1:
                    raise ODataServerError(
                        f"1C OData {method} {path}: gave up after {attempts} attempts; last error: {last}",
                        status=resp.status_code, code=code)
            if attempt < attempts - 1:
                delay = min(self.config.backoff_cap, self.config.backoff * 2**attempt)
                delay *= 0.5 + random.random() / 2  # jitter: loaded 1C servers dislike herds
                log.warning("1C OData %s %s failed (%s); retry %d/%d in %.1fs", method, path,
                            last, attempt + 1, attempts - 1, delay)
                time.sleep(delay)
        raise ODataServerError(
            f"1C OData {method} {path}: gave up after {attempts} attempts; last error: {last}"
        )

    def _json(self, resp: requests.Response, what: str) -> dict[str, Any]:
        try:
            doc = json.loads(resp.content.decode("utf-8-sig"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ODataProtocolError(
                f"1C OData {what}: the answer is not valid JSON ({exc.__class__.__name__} at "
                f"byte {getattr(exc, 'pos', '?')} of {len(resp.content)}); was $format=json honoured?",
                status=resp.status_code,
            ) from None
        if not isinstance(doc, dict):
            raise ODataProtocolError(f"1C OData {what}: expected a JSON object, got {type(doc).__name__}")
        if "odata.error" in doc:
            code, text = _error_text(resp.content)
            raise ODataServerError(f"1C OData {what}: error code {code}: {text}",
                                   status=resp.status_code, code=code)
        return doc

    def _get_ok(self, path: str, params: Mapping[str, Any] | None) -> requests.Response:
        """The 200 answer to a GET of a JSON document (``$format=json`` added), retrying
        transient failures."""
        resp = self._request("GET", path, {"$format": "json", **(params or {})})
        if resp.status_code != 200:
            self._raise_for(resp, f"GET {path}")
        return resp

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """GET a JSON document (``$format=json`` added), retrying transient failures."""
        return self._json(self._get_ok(path, params), f"GET {path}")

    def _page(self, resp: requests.Response, what: str) -> tuple[list[Any], Any]:
        """(rows, odata.count) of a page answer, rows as json.loads gives them."""
        doc = self._json(resp, what)
        rows = doc.get("value")
        if not isinstance(rows, list):
            raise ODataProtocolError(f"1C OData {what}: the answer has no 'value' list")
        return rows, doc.get("odata.count")

    # -- reading ------------------------------------------------------------------

    def count(self, entity_set: str, filter: str | None = None) -> int:
        resp = self._request("GET", f"{entity_set}/$count", {"$filter": filter})
        if resp.status_code != 200:
            self._raise_for(resp, f"GET {entity_set}/$count")
        text = resp.content.decode("utf-8-sig").strip()
        if not text.isdigit():
            raise ODataProtocolError(f"1C OData {entity_set}/$count: not a number: {text[:50]!r}")
        return int(text)

    def iter_pages(self, entity_set: str, select: Iterable[str], *, orderby: str,
                   filter: str | None = None, page_size: int | None = None
                   ) -> Iterator[list[dict[str, Any]]]:
        """Yield pages of rows until a short page; logs progress against odata.count."""
        return self._pages(entity_set, select, orderby=orderby, filter=filter, page_size=page_size,
                           decode=self._page)

    def _pages(self, entity_set: str, select: Iterable[str], *, orderby: str, filter: str | None,
               page_size: int | None, decode: Callable[[requests.Response, str], tuple[list[Any], Any]]
               ) -> Iterator[list[Any]]:
        """`iter_pages` with the page answers turned into (rows, odata.count) by `decode`."""
        size = page_size or self.config.page_size
        fields = ",".join(select)
        skip = 0
        total: int | None = None
        while True:
            params: dict[str, Any] = {"$select": fields, "$orderby": orderby,
                                      "$top": size, "$skip": skip}
            if filter:
                params["$filter"] = filter
            if total is None:
                params["$inlinecount"] = "allpages"
            rows, raw = decode(self._get_ok(entity_set, params), f"GET {entity_set}")
            if total is None:
                total = int(raw) if isinstance(raw, str | int) and str(raw).isdigit() else -1
            skip += len(rows)
            if total >= 0:
                log.info("%s: %s/%s rows", entity_set, f"{skip:,}".replace(",", " "),
                         f"{total:,}".replace(",", " "))
            yield rows
            if len(rows) < size:
                return

    def fetch_all(self, entity_set: str, select: Iterable[str], *, orderby: str,
                  filter: str | None = None, page_size: int | None = None) -> list[dict[str, Any]]:
        """All rows of a set. A row repeated verbatim across pages (data moved while paging)
        is kept once; rows that share a key but differ are kept, for the gate to report."""
        select = list(select)
        rows: list[dict[str, Any]] = []
        for page in self.iter_pages(entity_set, select, orderby=orderby, filter=filter,
                                    page_size=page_size):
            rows.extend(page)
        unique = _drop_repeats(rows, _order_fields(orderby))
        if len(unique) != len(rows):
            log.warning("%s: %d rows repeated across pages were dropped", entity_set,
                        len(rows) - len(unique))
        return unique

    def fetch_frame(self, entity_set: str, select: Iterable[str], *, orderby: str,
                    filter: str | None = None, page_size: int | None = None,
                    categorical: Iterable[str] = (), dates: Iterable[str] = ()) -> pd.DataFrame:
        """All rows of a set as a "raw frame": one column per selected field, 1C's names.

        Each page is decoded into its selected fields only (`_PageReader`), becomes Arrow
        arrays as it arrives and its rows are dropped, so a set of millions of rows is held
        as columns (about a third of the memory of the rows as dicts).
        Values keep what 1C sent: text as Arrow-backed strings, numbers and booleans as
        numbers and booleans; a column whose values disagree in type stays Python objects
        for normalise's careful path. Repeats across pages are dropped as in `fetch_all`.
        The `categorical` fields (few distinct values in many rows: `schema.REPEATING_FIELDS`)
        are dictionary-encoded page by page when they hold text: pandas categoricals of it.
        The `dates` fields (`schema.DATE_FIELDS`) are parsed page by page when every value is
        1C's timestamp text: datetime64[s] (`_timestamps`).
        """
        select = list(select)
        reader = _PageReader(select)

        def decode(resp: requests.Response, what: str) -> tuple[list[Any], Any]:
            return reader.decode(resp.content) or self._page(resp, what)

        pages = _read_ahead(self._pages(entity_set, select, orderby=orderby, filter=filter,
                                        page_size=page_size, decode=decode))
        df, repeats = _frame_from_columns(map(reader.columns, pages), select, _order_fields(orderby),
                                          categorical, dates)
        if repeats:
            log.warning("%s: %d rows repeated across pages were dropped", entity_set, repeats)
        return df

    def get_entity(self, entity_set: str, ref: str, select: Iterable[str] | None = None
                   ) -> dict[str, Any] | None:
        """One object by Ref_Key, or None when 1C says it does not exist."""
        params = {"$select": ",".join(select)} if select else None
        try:
            return self.get(f"{entity_set}(guid'{ref}')", params)
        except ODataNotFound:
            return None

    # -- $metadata ----------------------------------------------------------------

    def metadata(self) -> dict[str, dict[str, str]]:
        """Published entity sets -> {property: EDM type}; fetched once per client."""
        if self._metadata is None:
            resp = self._request("GET", "$metadata")
            if resp.status_code != 200:
                self._raise_for(resp, "GET $metadata")
            self._metadata = parse_metadata(resp.content)
        return self._metadata

    def check_published(self, required: Mapping[str, Iterable[str]]) -> None:
        """Fail early, naming every entity set and field the publication lacks."""
        meta = self.metadata()
        missing_sets = [name for name in required if name not in meta]
        missing_fields = {
            name: [f for f in fields if f not in meta[name]]
            for name, fields in required.items()
            if name in meta and any(f not in meta[name] for f in fields)
        }
        if missing_sets or missing_fields:
            raise NotPublished(missing_sets, missing_fields)

    # -- writing ------------------------------------------------------------------

    def post(self, entity_set: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create an object; not retried here (the caller looks its Ref_Key up first)."""
        resp = self._request("POST", entity_set, {"$format": "json"}, body=dict(body), retry=False)
        if resp.status_code not in (200, 201):
            self._raise_for(resp, f"POST {entity_set}")
        return self._json(resp, f"POST {entity_set}")

    def patch(self, entity_set: str, ref: str, body: Mapping[str, Any]) -> dict[str, Any]:
        resp = self._request("PATCH", f"{entity_set}(guid'{ref}')", {"$format": "json"},
                             body=dict(body), retry=False)
        if resp.status_code != 200:
            self._raise_for(resp, f"PATCH {entity_set}")
        return self._json(resp, f"PATCH {entity_set}")


def _drop_repeats(rows: list[dict[str, Any]], key_fields: list[str]) -> list[dict[str, Any]]:
    """`rows` without verbatim repeats, in order; rows that share a key but differ stay.

    Rows are bucketed by their ``$orderby`` fields and compared whole only within a
    bucket: a verbatim repeat necessarily has the same key, and hashing two fields
    instead of serialising every row made this ~10x cheaper (it was a third of the time
    of reading a big set; issue 8 benchmark). Whole rows compare as dicts (field order
    aside, 1 equals 1.0). Without usable key fields (not selected, or an unhashable
    value) a row's bucket is its canonical JSON.
    """
    if not rows or any(f not in rows[0] for f in key_fields) or not key_fields:
        key_fields = []
    single = key_fields[0] if len(key_fields) == 1 else None
    first: dict[Any, dict[str, Any]] = {}
    differing: dict[Any, list[dict[str, Any]]] = {}  # same key, different content
    unique: list[dict[str, Any]] = []
    for row in rows:
        if single is not None:
            key: Any = row.get(single)
        elif key_fields:
            key = tuple(row.get(f) for f in key_fields)
        else:
            key = json.dumps(row, sort_keys=True, ensure_ascii=False, default=str)
        try:
            seen = first.setdefault(key, row)
        except TypeError:  # an unhashable key value: compare this row by its canonical JSON
            key = json.dumps(row, sort_keys=True, ensure_ascii=False, default=str)
            seen = first.setdefault(key, row)
        if seen is not row:
            others = differing.setdefault(key, [])
            if seen == row or any(other == row for other in others):
                continue
            others.append(row)
        unique.append(row)
    return unique


class _PageReader:
    """Decodes a page answer straight into one small struct per row holding only the
    selected fields, with msgspec: 3-5x cheaper than json.loads building a dict per row,
    which was most of the client's time per page (issue 8 benchmark).

    It takes only a plain page: a JSON object whose "value" is a list of objects and that
    has no "odata.error". Anything else (an error, a row that is not an object, JSON that
    msgspec refuses such as NaN, truncated bodies) makes `decode` return None and goes the
    generic json.loads way, so such answers give the same rows or errors as before. Where
    msgspec accepts a page its values equal json.loads' (numbers parse alike, a repeated
    key keeps its last value, a missing field is None as with ``dict.get``).
    """

    def __init__(self, select: list[str]):
        self.select = select
        names = list(dict.fromkeys(select))
        attrs = [f"f{i}" for i in range(len(names))]  # 1C's field names need not be identifiers
        self.row = msgspec.defstruct("Row", [(a, Any, None) for a in attrs],
                                     rename=dict(zip(attrs, names, strict=True)), gc=False)
        page = msgspec.defstruct("Page", [("value", list[self.row]), ("count", Any, None),
                                          ("error", Any, msgspec.UNSET)],
                                 rename={"count": "odata.count", "error": "odata.error"})
        self._decoder = msgspec.json.Decoder(page)
        self._getters = [attrgetter(attrs[names.index(f)]) for f in select]

    def decode(self, body: bytes) -> tuple[list[Any], Any] | None:
        """(rows as structs, odata.count), or None when the body is not a plain page."""
        view = memoryview(body)
        if body.startswith(codecs.BOM_UTF8):  # what decoding as utf-8-sig drops
            view = view[len(codecs.BOM_UTF8):]
        try:
            page = self._decoder.decode(view)
        except (msgspec.DecodeError, UnicodeDecodeError):
            return None
        if page.error is not msgspec.UNSET:
            return None
        return page.value, page.count

    def columns(self, rows: list[Any]) -> list[list[Any]]:
        """`page_columns` of a page, of structs from `decode` or of json.loads' rows."""
        if not rows or type(rows[0]) is not self.row:
            return page_columns(rows, self.select)
        # a pass per field: no tuple per row to build and transpose (nor for gc to scan)
        return [list(map(get, rows)) for get in self._getters]


def _read_ahead(pages: Iterator[list[dict[str, Any]]]) -> Iterator[list[dict[str, Any]]]:
    """`pages`, with the next page requested while the caller converts this one.

    1C spends most of a page's time answering; turning the previous page into columns
    meanwhile hides that work. Still one request at a time (the next starts when the
    previous page is handed over), so the server sees the same sequential paging, and
    the worker thread's errors (retries exhausted, bad JSON) are raised here, in order.
    """
    return read_ahead(pages, name="odata-read-ahead")


def _order_fields(orderby: str) -> list[str]:
    """The field names of a ``$orderby`` ("Ref_Key,LineNumber desc" -> both names)."""
    return [part.split()[0] for part in orderby.split(",") if part.strip()]


def frame_from_pages(pages: Iterable[list[dict[str, Any]]], select: list[str], key_fields: list[str],
                     categorical: Iterable[str] = (), dates: Iterable[str] = ()) -> tuple[pd.DataFrame, int]:
    """(raw frame, rows dropped as repeats) of `fetch_frame`, from pages of decoded rows.

    Each page is turned into columns and Arrow arrays before the next is read, so the
    caller may drop its dicts; exposed for benchmarks and tests that have rows, not 1C.
    """
    return _frame_from_columns((page_columns(page, select) for page in pages), select, key_fields,
                               categorical, dates)


def _frame_from_columns(pages: Iterable[list[list[Any]]], select: list[str], key_fields: list[str],
                        categorical: Iterable[str] = (), dates: Iterable[str] = ()) -> tuple[pd.DataFrame, int]:
    """`frame_from_pages` from pages already split into one list of values per field."""
    chunks: dict[str, list[Any]] = {f: [] for f in select}
    encode, parse = set(categorical), set(dates)
    for columns in pages:
        for f, values in zip(select, columns, strict=True):
            chunk = _arrow_or_list(values)
            if f in encode and isinstance(chunk, pa.Array) and chunk.type == pa.string():
                chunk = chunk.dictionary_encode()  # the page's text goes now, its distinct values stay
            elif f in parse and isinstance(chunk, pa.Array) and chunk.type == pa.string():
                chunk = _timestamps(chunk)
            chunks[f].append(chunk)
    df = pd.DataFrame({f: _column(chunks.pop(f)) for f in select}, copy=False)
    unique = drop_repeated_rows(df, key_fields)
    return unique, len(df) - len(unique)


#: 1C's timestamps: '2026-03-20T10:15:00' (no fraction, no zone; the empty date is 0001-01-01T00:00:00)
_STAMP = "%Y-%m-%dT%H:%M:%S"
_STAMP_TYPE = pa.timestamp("s")


def _timestamps(chunk: pa.Array) -> pa.Array:
    """A page's text column as timestamp[s] when every value is exactly 1C's timestamp text
    (`_STAMP`: 19 characters, 'T' between date and time, a real day and time), else the text
    as it came: normalise's careful path and the gate see odd values as 1C sent them. Arrow's
    ISO 8601 cast refuses 2026-02-30 and 2026-1-05; the shape check refuses what it would
    accept beside the format (a date alone, a space for the 'T')."""
    if len(chunk) == 0:
        return chunk
    shaped = pc.and_(pc.equal(pc.utf8_length(chunk), 19),
                     pc.equal(pc.utf8_slice_codeunits(chunk, 10, 11), "T"))
    if not pc.all(shaped).as_py():  # (nulls are skipped: a missing value stays missing)
        return chunk
    try:
        return pc.cast(chunk, _STAMP_TYPE)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return chunk


def page_columns(rows: list[dict[str, Any]], fields: list[str]) -> list[list[Any]]:
    """The rows' values, one list per field (a missing key gives None).

    One C-level `itemgetter` pass and a transpose: walking every dict once per field
    (or `DataFrame.from_records`) is several times slower for a 5000-row page.
    """
    if not rows:
        return [[] for _ in fields]
    try:
        values = list(map(itemgetter(*fields), rows))
    except (KeyError, TypeError):  # a row without some field: the slow, forgiving way
        return [[r.get(f) if isinstance(r, dict) else None for r in rows] for f in fields]
    if len(fields) == 1:
        return [values]
    return [list(col) for col in zip(*values, strict=True)]


#: Python types of JSON scalars -> the Arrow type a page column of them becomes
_ARROW_TYPES = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}


@dataclass(frozen=True)
class _Numbers:
    """A page column of ints and floats: float64, plus which values were ints, so that a
    column that ends up as Python objects (types differ between pages) gets them back."""

    values: pa.Array
    is_int: np.ndarray

    def to_pylist(self) -> list[Any]:
        return [int(v) if i else v for v, i in zip(self.values.to_pylist(), self.is_int, strict=True)]


def _arrow_or_list(values: list[Any]) -> pa.Array | _Numbers | list[Any]:
    """A page's column as an Arrow array when its values share one JSON scalar type (ints
    and floats together are floats, as pandas infers), else the list itself.

    Arrow infers text only when every value is a str or None (most columns: GUIDs); for
    numbers and booleans the types are checked, as Arrow's inference would quietly turn
    ``[0.5, False]`` into numbers and the gate must see such a column as it came.
    """
    try:
        arr = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):  # mixed types, huge integers
        return values
    if arr.type == pa.string() or arr.type == pa.null():
        return arr
    kinds = set(map(type, values))
    kinds.discard(type(None))
    if kinds == {int, float}:  # JSON numbers 100 and 100.5 in one page: floats, ints remembered
        is_int = np.equal(np.fromiter(map(type, values), dtype=object, count=len(values)), int)
        return _Numbers(arr.cast(pa.float64()), is_int)
    if len(kinds) == 1 and _ARROW_TYPES.get(kinds.pop()) == arr.type:
        return arr
    return values


def _column(chunks: list[pa.Array | _Numbers | list[Any]]) -> pd.Series:
    """One set's column from its page chunks, with the dtype pandas would infer from the
    whole list of values (what `normalise` got from row lists): str, int64, float64, bool,
    object. Integers and floats of different pages become float64, as pandas would. Pages of
    dictionary-encoded text make a categorical of the text, unless some page held something
    else (then the text is decoded and the column inferred as without encoding)."""
    if not chunks:
        return pd.Series([], dtype=object)
    stamped = [isinstance(c, pa.Array) and c.type == _STAMP_TYPE for c in chunks]
    if any(stamped) and not all(s or (isinstance(c, pa.Array) and c.type == pa.null())
                                for c, s in zip(chunks, stamped, strict=True)):
        # some page kept its text (`_timestamps`): the parsed pages become their exact text again
        chunks = [pc.strftime(c, format=_STAMP) if s else c for c, s in zip(chunks, stamped, strict=True)]
    encoded = [isinstance(c, pa.DictionaryArray) for c in chunks]
    if any(encoded):
        if all(e or (isinstance(c, pa.Array) and c.type == pa.null()) for c, e in zip(chunks, encoded, strict=True)):
            return _categorical_column(chunks)
        chunks = [c.dictionary_decode() if e else c for c, e in zip(chunks, encoded, strict=True)]
    if all(isinstance(c, pa.Array | _Numbers) for c in chunks):
        arrays = [c.values if isinstance(c, _Numbers) else c for c in chunks]
        kinds = {c.type for c in arrays if c.type != pa.null()}
        if not kinds:
            return pd.Series([None] * sum(len(c) for c in arrays), dtype=object)
        if kinds <= {pa.int64(), pa.float64()} and len(kinds) == 2:
            kinds = {pa.float64()}
        if len(kinds) == 1:
            kind = kinds.pop()
            if kind == pa.string():
                # one contiguous array, as pandas' str keeps it (large_string): a column of
                # pages is hundreds of small buffers scattered among the freed pages' memory,
                # which stays resident (1M open documents: 1.5 GB), and every kernel later
                # pays per chunk
                text = [c.cast(pa.large_string()) for c in arrays if len(c)]
                return pd.Series(pa.concat_arrays(text) if text else pa.array([], pa.large_string()), dtype="str")
            return pd.Series(pa.chunked_array([c.cast(kind) for c in arrays if len(c)], type=kind).to_pandas())
    # types disagree between pages (or within one): Python objects, as pandas infers them
    values: list[Any] = []
    for c in chunks:
        values.extend(c if isinstance(c, list) else c.to_pylist())
    return pd.Series(values)


def _categorical_column(chunks: list[pa.Array]) -> pd.Series:
    """A categorical of the text of dictionary-encoded page chunks (all-missing pages: null
    chunks): one dictionary for all, in order of first appearance; missing values code -1."""
    kind = pa.dictionary(pa.int32(), pa.string())
    parts = [c if isinstance(c, pa.DictionaryArray)
             else pa.DictionaryArray.from_arrays(pa.nulls(len(c), pa.int32()), pa.array([], pa.string()))
             for c in chunks if len(c)]
    if not parts:
        return pd.Series(pd.Categorical([], categories=pd.Index([], dtype="str")))
    whole = pa.chunked_array(parts, type=kind).combine_chunks()  # unifies the pages' dictionaries
    codes = whole.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    categories = pd.Index(pd.Series(whole.dictionary.cast(pa.large_string()), dtype="str"))
    return pd.Series(pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(categories), validate=False))


def drop_repeated_rows(df: pd.DataFrame, key_fields: list[str]) -> pd.DataFrame:
    """`df` without rows equal in every column to an earlier row, in order.

    Within one OData page rows are distinct, so equal rows are page repeats (data moved
    while paging); rows that share a key but differ stay, for the gate to report. Only
    rows whose ``$orderby`` key occurs twice are compared whole: usually none.
    """
    if len(df) < 2:
        return df
    keys = [k for k in key_fields if k in df.columns] or list(df.columns)
    try:
        twice = df.duplicated(keys, keep=False).to_numpy()
    except TypeError:  # unhashable values (lists, dicts): compare their canonical JSON
        twice = np.ones(len(df), dtype=bool)
    if not twice.any():
        return df
    candidates = df.loc[twice]
    try:
        repeat = candidates.duplicated().to_numpy()
    except TypeError:
        as_json = candidates.map(lambda v: json.dumps(v, sort_keys=True, ensure_ascii=False, default=str))
        repeat = as_json.duplicated().to_numpy()
    drop = np.zeros(len(df), dtype=bool)
    drop[np.flatnonzero(twice)[repeat]] = True
    return df.loc[~drop].reset_index(drop=True) if drop.any() else df


def parse_metadata(content: bytes) -> dict[str, dict[str, str]]:
    """EDMX (OData v3) -> {entity set: {property: type}}; tolerant of namespaces."""
    try:
        root = ET.fromstring(content)
    except ET.ParseError as exc:
        raise ODataProtocolError(f"1C OData $metadata is not valid XML: {exc}") from None
    types: dict[str, dict[str, str]] = {}
    for el in root.iter():
        if el.tag.rsplit("}", 1)[-1] == "EntityType":
            props = {
                p.get("Name", ""): p.get("Type", "")
                for p in el
                if p.tag.rsplit("}", 1)[-1] in ("Property", "NavigationProperty")
            }
            types[el.get("Name", "")] = props
    sets: dict[str, dict[str, str]] = {}
    for el in root.iter():
        if el.tag.rsplit("}", 1)[-1] == "EntitySet":
            type_name = el.get("EntityType", "").rsplit(".", 1)[-1]
            sets[el.get("Name", "")] = types.get(type_name, {})
    return sets


_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s:@]+(?::[^/\s@]*)?@")


def redact(text: str) -> str:
    """Strip user:password@ from every URL in a message (an operator may have put them there)."""
    return _URL_CREDENTIALS.sub(r"\g<scheme>***@", text)


def _short(exc: BaseException) -> str:
    text = redact(str(exc))
    return text if len(text) < 160 else text[:157] + "..."
