"""Between pandas columns and database values: exact money, dates, UTC moments.

Money travels in Python as int64 kopecks and is stored as NUMERIC rubles. It never
passes through float on its way to PostgreSQL: kopecks become exact decimal text
(``12345678901`` -> ``"123456789.01"``). SQLite has no decimal type (a NUMERIC column
keeps REAL), so it gets ``k / 100`` as a double: IEEE division is correctly rounded, so
that is the nearest double to the exact ruble amount, equal to ``float(Decimal(k) / 100)``,
and it reads back to the same kopecks for every |k| < 2^51 (22.5 trillion rubles).
Reading, both backends compute ``CAST(ROUND(col * 100) AS BIGINT)`` in SQL: exact
integers on PostgreSQL, the nearest integer of the double on SQLite. (On SQLite a plain
``SUM(col)`` adds doubles and can drift by kopecks over many rows; summing
``ROUND(col * 100)`` is exact.)
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

_MAX_EXACT = 2**53
#: PostgreSQL COPY text format: NULL marker and the characters that need a backslash
COPY_NULL = "\\N"
_COPY_SPECIAL = r"[\\\t\n\r]"


def kopecks_array(series: pd.Series, name: str = "money") -> tuple[np.ndarray, np.ndarray]:
    """(int64 values, missing mask) of a kopecks column; fractional kopecks are an error."""
    missing = series.isna().to_numpy(dtype=bool)
    if pd.api.types.is_integer_dtype(series.dtype):
        return series.to_numpy(dtype="int64", na_value=0), missing
    if pd.api.types.is_float_dtype(series.dtype):
        values = series.to_numpy(dtype="float64", na_value=0.0)
    else:
        values = pd.to_numeric(series, errors="raise").to_numpy(dtype="float64", na_value=0.0)
    if not np.array_equal(values, np.rint(values)) or np.abs(values).max(initial=0) >= _MAX_EXACT:
        raise ValueError(f"column {name!r} must hold whole kopecks (int64), got fractions or huge values")
    return values.astype("int64"), missing


def rubles(kopecks: Any) -> Decimal | None:
    """One kopecks amount as exact Decimal rubles (None for missing)."""
    if kopecks is None or kopecks is pd.NA or kopecks is pd.NaT:
        return None
    if isinstance(kopecks, float):
        if np.isnan(kopecks):
            return None
        if kopecks != round(kopecks):
            raise ValueError(f"money must be whole kopecks, got {kopecks!r}")
    return Decimal(int(kopecks)).scaleb(-2)


def money_sqlite(series: pd.Series, name: str = "money") -> list[float | None]:
    """Kopecks as the nearest double to the exact rubles (what SQLite's NUMERIC keeps)."""
    values, missing = kopecks_array(series, name)
    out: list[float | None] = (values / 100).tolist()
    if missing.any():
        for i in np.flatnonzero(missing).tolist():
            out[i] = None
    return out


def date_text(series: pd.Series) -> list[str | None]:
    """Calendar dates (datetime64 of any unit, date objects, ISO text) as ``YYYY-MM-DD``."""
    if not pd.api.types.is_datetime64_any_dtype(series.dtype):
        series = pd.to_datetime(series)
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        series = series.dt.tz_localize(None)
    days = series.to_numpy(dtype="datetime64[ns]").astype("datetime64[D]")
    uniq, inverse = np.unique(days, return_inverse=True)  # few distinct dates: format once each
    labels = np.asarray([None if np.isnat(u) else str(u) for u in uniq], dtype=object)
    return labels[inverse.reshape(-1)].tolist()


def day(value: Any) -> dt.date | None:
    """One calendar date (date, datetime, Timestamp, numpy datetime64, ISO text)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    stamp = pd.Timestamp(value)
    return None if pd.isna(stamp) else stamp.date()


def utc(value: Any) -> dt.datetime | None:
    """One moment as an aware UTC datetime; naive values are taken as UTC."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    stamp = pd.Timestamp(value)
    if pd.isna(stamp):
        return None
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime()


def int_values(series: pd.Series) -> list[int | None]:
    if pd.api.types.is_integer_dtype(series.dtype) and not series.hasnans:
        return series.to_numpy(dtype="int64").tolist()
    return [None if pd.isna(v) else int(v) for v in series.to_numpy(dtype=object)]


def text_values(series: pd.Series) -> list[Any]:
    """Text (or any scalar) column as Python values with None for missing."""
    return series.to_numpy(dtype=object, na_value=None).tolist()


def _arrow(values: Any, type_: pa.DataType | None = None) -> pa.Array:
    arr = pa.array(values, type=type_, from_pandas=True)
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def _large(value: str | None) -> pa.Scalar:
    return pa.scalar(value, pa.large_string())


def _copy_filled(arr: pa.Array) -> pa.Array:
    return pc.fill_null(arr.cast(pa.large_string()), _large(COPY_NULL))


def copy_text_column(series: pd.Series) -> pa.Array:
    """A text column escaped for PostgreSQL ``COPY … FROM STDIN`` (text format), NULL as ``\\N``."""
    if isinstance(series.dtype, pd.CategoricalDtype):  # the plan's text columns
        from receivables.domain.frames import categorical_text

        series = categorical_text(series)
    if not isinstance(series.dtype, pd.StringDtype):
        series = series.astype("str")
    arr = _arrow(series, pa.large_string())
    if len(arr) and pc.any(pc.match_substring_regex(arr, _COPY_SPECIAL)).as_py():
        for plain, escaped in (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r")):
            arr = pc.replace_substring(arr, plain, escaped)
    return _copy_filled(arr)


def copy_money_column(series: pd.Series, name: str = "money") -> pa.Array:
    """Kopecks as exact ruble text for COPY (``-1.05``), vectorised, never via float."""
    values, missing = kopecks_array(series, name)
    magnitude = np.abs(values)
    whole = _arrow(magnitude // 100).cast(pa.large_string())
    cents = pc.utf8_lpad(_arrow(magnitude % 100).cast(pa.large_string()), width=2, padding="0")
    txt = pc.binary_join_element_wise(whole, cents, _large("."))
    negative = values < 0
    if negative.any():
        minus = pc.binary_join_element_wise(_large("-"), txt, _large(""))
        txt = pc.if_else(_arrow(negative), minus, txt)
    if missing.any():
        txt = pc.if_else(_arrow(missing), _large(None), txt)
    return _copy_filled(txt)


def copy_date_column(series: pd.Series) -> pa.Array:
    """Calendar dates as ``YYYY-MM-DD`` for COPY."""
    if not pd.api.types.is_datetime64_any_dtype(series.dtype):
        series = pd.to_datetime(series)
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        series = series.dt.tz_localize(None)
    days = series.to_numpy(dtype="datetime64[ns]").astype("datetime64[D]")
    return _copy_filled(_arrow(days))


def copy_moment_column(series: pd.Series) -> pa.Array:
    """Moments as UTC ISO text for COPY (``2026-12-01 09:00:00.000000Z``; naive values are UTC)."""
    return _copy_filled(_arrow(utc_series(series.tolist())))


def copy_int_column(series: pd.Series) -> pa.Array:
    return _copy_filled(_arrow(series, pa.int64()))


def copy_constant(value: str, n: int) -> pa.Array:
    return copy_text_column(pd.Series([value] * n, dtype="str")) if n else pa.array([], pa.large_string())


def copy_block(columns: list[pa.Array]) -> io.BytesIO:
    """Tab-separated, newline-terminated UTF-8 rows of the (already escaped) columns."""
    joined = pc.binary_join_element_wise(*columns, _large("\t"))
    lines = pc.binary_join_element_wise(joined, _large(""), _large("\n"))
    if lines.null_count:
        raise AssertionError("a COPY column kept a NULL")  # every column is filled with \\N
    _, offsets, data = lines.buffers()
    bounds = np.frombuffer(offsets, dtype=np.int64)[lines.offset:lines.offset + len(lines) + 1]
    start, end = (int(bounds[0]), int(bounds[-1])) if len(bounds) else (0, 0)
    return io.BytesIO(data.slice(start, end - start).to_pybytes() if end > start else b"")


def copy_rows(conn: Any, table: str, columns: dict[str, pa.Array]) -> None:
    """PostgreSQL: the rows of `columns` (COPY text, as the ``copy_*`` functions give) into
    `table` by one ``COPY FROM STDIN``: a statement per batch instead of parameters per value."""
    quote = conn.dialect.identifier_preparer.quote
    cur = conn.connection.dbapi_connection.cursor()
    try:
        cur.copy_expert(f"COPY {quote(table)} ({', '.join(quote(c) for c in columns)}) FROM STDIN",
                        copy_block(list(columns.values())), size=1 << 20)
    finally:
        cur.close()


def copy_batches(conn: Any, table: str, batches: Iterable[dict[str, pa.Array]]) -> None:
    """`copy_rows` of each batch in turn, the next batch's columns built in a worker thread while
    PostgreSQL takes the current one: building COPY text (Arrow, pandas) and the server's work
    (parsing, indexes; the driver waits with the GIL released) overlap instead of taking turns."""
    from receivables.prefetch import read_ahead

    for columns in read_ahead(iter(batches), name="copy-text"):
        copy_rows(conn, table, columns)


# -- reading ----------------------------------------------------------------------------

def int_series(values: Any, index: pd.Index | None = None) -> pd.Series:
    """Integers from the database: int64, or Int64 when some are NULL."""
    s = pd.Series(pd.array(list(values), dtype="Int64"), index=index)
    return s.astype("int64") if not s.hasnans else s


#: kopecks come back from ``CAST(ROUND(col * 100) AS BIGINT)`` as plain integers
kopecks_series = int_series


def dates_from_days(values: Any, index: pd.Index | None = None) -> pd.Series:
    """Days since 1970-01-01 (NULL allowed) as ``datetime64[s]``."""
    days = pd.array(list(values), dtype="Int64")
    out = np.full(len(days), np.datetime64("NaT"), dtype="datetime64[s]")
    ok = ~days.isna()
    out[ok] = days[ok].to_numpy(dtype="int64").astype("datetime64[D]").astype("datetime64[s]")
    return pd.Series(out, index=index)


def utc_series(values: Any, index: pd.Index | None = None) -> pd.Series:
    """Moments as tz-aware UTC (naive values, as SQLite returns them, are UTC)."""
    return pd.Series(pd.to_datetime(pd.Series(list(values), dtype=object), utc=True, format="mixed"),
                     index=index).astype("datetime64[us, UTC]")
