"""Worksheet rows as SpreadsheetML built a column at a time, for XlsxWriter's streamed sheets.

XlsxWriter writes a cell at a time in Python (~7 µs a cell): at a million open documents the
report's document list, twelve columns, took ~80 s. A column of one kind (text, number, money,
date) is the same XML around different values, so a block of rows is built with Arrow's string
kernels and written where XlsxWriter streams the sheet's rows (its ``constant_memory`` mode):
the XML it writes for those cells, with the column's format as the cell's style, missing and
empty values as no cell. Text is escaped as XlsxWriter escapes inline strings; the rare value
with control characters, an ``_xHHHH_`` pattern or more than Excel's 32 767 characters takes
XlsxWriter's own escaping, value by value. XlsxWriter still makes the workbook: sheets, formats,
widths, panes, filters, the header and every sheet with a column of mixed values.

This reaches into XlsxWriter's streamed worksheet (its row file, pending row and dimensions):
the version is pinned, and tests/integration/test_report.py compares the cells with those
XlsxWriter writes itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

#: rows built at a time (~30 MB of XML for a dozen columns)
BLOCK_ROWS = 50_000
#: Excel's longest cell text; XlsxWriter cuts longer values
MAX_TEXT = 32_767
#: values XlsxWriter escapes specially (control characters as _xHHHH_, the pattern itself)
_SPECIAL = r"[\x00-\x08\x0b-\x1f\x{fffe}\x{ffff}]|_x[0-9a-fA-F]{4}_"
#: leading or trailing whitespace as Python's \s has it (XlsxWriter's test), minus the control
#: characters, which take the special path
_EDGE_SPACE = r"^[\s\x{85}\pZ]|[\s\x{85}\pZ]$"
#: Excel's serial day of 1970-01-01 (the 1900 system; right from 1900-03-01 on)
_EPOCH_SERIAL = 25_569
_FIRST_PLAIN_DAY = np.datetime64("1900-03-01", "D")


def rubles(kopecks: pd.Series) -> np.ndarray:
    """A money column (integer kopecks) as the workbook's rubles: doubles, exact to the kopeck
    (the nearest double to kop/100 either way); missing as NaN."""
    return np.trunc(kopecks.to_numpy(dtype="float64", na_value=np.nan)) / 100.0


def column_kinds(df: pd.DataFrame, money_cols: set[str], date_cols: set[str]) -> list[str] | None:
    """Each column's kind ("money", "date", "number", "text") as the report writes it, or None
    when a column is none of them (values of several types, booleans, timestamps, infinities):
    such a sheet is written cell by cell."""
    kinds = []
    for col in df.columns:
        s = df[col]
        if col in money_cols:
            kinds.append("money")
        elif col in date_cols:
            if isinstance(s.dtype, pd.DatetimeTZDtype) or (
                    s.dropna().to_numpy(dtype="datetime64[D]") < _FIRST_PLAIN_DAY).any():
                return None  # a moment's local day, or the 1900 system's first two months
            kinds.append("date")
        elif pd.api.types.is_bool_dtype(s.dtype):
            return None
        elif pd.api.types.is_numeric_dtype(s.dtype):
            if not np.isfinite(s.dropna().to_numpy(dtype="float64")).all():
                return None  # XlsxWriter refuses infinities
            kinds.append("number")
        elif pd.api.types.infer_dtype(s.cat.categories if isinstance(s.dtype, pd.CategoricalDtype) else s,
                                      skipna=True) in ("string", "empty"):
            kinds.append("text")
        else:
            return None
    return kinds


def write_rows(ws: Any, df: pd.DataFrame, kinds: Sequence[str], styles: Sequence[int | None],
               first_row: int) -> None:
    """`df`'s rows into the streamed worksheet `ws` from row `first_row` (0-based) on, after
    the rows XlsxWriter has (the header); `styles`: each column's format index or None."""
    if df.empty:
        return
    last = first_row + len(df) - 1
    ws._check_dimensions(last, len(df.columns) - 1)  # the sheet's extent, before its rows go out
    ws._write_single_row(last + 1)  # XlsxWriter's pending row (the header) first
    from xlsxwriter.utility import xl_col_to_name

    letters = [xl_col_to_name(k) for k in range(len(df.columns))]
    for start in range(0, len(df), BLOCK_ROWS):
        block = df.iloc[start:start + BLOCK_ROWS]
        ws.fh.write(rows_xml(block, kinds, styles, letters, first_row + start))


def rows_xml(block: pd.DataFrame, kinds: Sequence[str], styles: Sequence[int | None],
             letters: Sequence[str], first_row: int) -> str:
    """The ``<row>`` elements of `block`, its first row being sheet row `first_row` (0-based)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    numbers = pa.array(np.arange(first_row + 1, first_row + len(block) + 1)).cast(pa.string())
    cells = []
    for col, kind, style, letter in zip(block.columns, kinds, styles, letters, strict=True):
        head = f'<c r="{letter}'
        attrs = "" if style is None else f' s="{style}"'
        value, present = _values(block[col], kind)
        if kind == "text":
            escaped, preserve = _escaped(value)
            cell = pc.binary_join_element_wise(
                head, numbers, f'"{attrs} t="inlineStr"><is><t',
                pc.if_else(preserve, ' xml:space="preserve">', ">"), escaped, "</t></is></c>", "")
        else:
            cell = pc.binary_join_element_wise(head, numbers, f'"{attrs}><v>', value, "</v></c>", "")
        cells.append(pc.if_else(present, cell, ""))
    rows = pc.binary_join_element_wise('<row r="', numbers, '">', *cells, "</row>", "")
    return _joined(rows)


def _values(s: pd.Series, kind: str):
    """(the column's values as text, whether each is written): missing values and empty text
    are not."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from receivables.domain.frames import arrow_str

    if kind == "text":  # missing text is empty text, which is no cell
        text = pc.fill_null(arrow_str(s.reset_index(drop=True)), "")
        if isinstance(text, pa.ChunkedArray):
            text = text.combine_chunks()
        text = text.cast(pa.string())  # (a block's text is far below 2 GB)
        return text, pc.greater(pc.utf8_length(text), 0)
    missing = s.isna().to_numpy(dtype=bool)
    if kind == "money":
        values = rubles(s)
    elif kind == "date":
        days = s.to_numpy(dtype="datetime64[D]")
        values = np.where(missing, 0, days.astype("int64") + _EPOCH_SERIAL)
    elif pd.api.types.is_integer_dtype(s.dtype):
        values = s.to_numpy(dtype="int64", na_value=0)
    else:
        values = s.to_numpy(dtype="float64", na_value=np.nan)
    return pa.array(values).cast(pa.string()), pa.array(~missing)


def _escaped(text):
    """(`text` escaped as XlsxWriter escapes an inline string, whether it keeps its edge
    whitespace)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    escaped = text
    for char, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;")):
        escaped = pc.replace_substring(escaped, char, entity)
    preserve = pc.match_substring_regex(text, _EDGE_SPACE)
    special = pc.or_(pc.match_substring_regex(text, _SPECIAL), pc.greater(pc.utf8_length(text), MAX_TEXT))
    at = np.flatnonzero(special.to_numpy(zero_copy_only=False))
    if len(at):
        done = [_escape_one(v) for v in text.take(pa.array(at)).to_pylist()]
        mask = special.fill_null(False)
        escaped = pc.replace_with_mask(escaped, mask, pa.array([v for v, _ in done], type=pa.string()))
        preserve = pc.replace_with_mask(preserve, mask, pa.array([p for _, p in done], type=pa.bool_()))
    return escaped, preserve


def _escape_one(value: str) -> tuple[str, bool]:
    """XlsxWriter's own escaping of one inline string (cut to Excel's length, control
    characters as _xHHHH_, then XML): (text, whether it keeps its edge whitespace)."""
    from xlsxwriter.utility import _preserve_whitespace
    from xlsxwriter.xmlwriter import XMLwriter

    value = XMLwriter._escape_control_characters(value[:MAX_TEXT])
    return XMLwriter()._escape_data(value), bool(_preserve_whitespace(value))


def _joined(rows) -> str:
    """The rows' text end to end: the string array's data buffer, without a Python string
    per row."""
    import pyarrow as pa

    rows = rows.combine_chunks() if isinstance(rows, pa.ChunkedArray) else rows
    if not len(rows):
        return ""
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int32)[rows.offset:rows.offset + len(rows) + 1]
    return memoryview(rows.buffers()[2])[offsets[0]:offsets[-1]].tobytes().decode("utf-8")
