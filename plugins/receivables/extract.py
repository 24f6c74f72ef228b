"""Extraction as of a date: 1C OData -> canonical frames -> the run's Parquet files.

Each run keeps its own extract (``<data_dir>/runs/<as_of>/<run_id>/extract/*.parquet``)
so it can be reproduced and diffed; later steps read those files, never XCom blobs.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from receivables.domain.normalise import normalise_as_of
from receivables.onec.client import ODataClient, _order_fields, frame_from_pages
from receivables.onec.schema import DATE_FIELDS, READ_SETS, REPEATING_FIELDS

log = logging.getLogger(__name__)

#: stable $orderby per set (paging needs one); tabular sections add LineNumber
ORDER_BY = {name: ("Ref_Key,LineNumber" if "LineNumber" in fields else "Ref_Key")
            for name, fields in READ_SETS.items()}
ORDER_BY["InformationRegister_ПартнерыСегмента"] = "Сегмент_Key,Партнер_Key"
#: the aging snapshot's file in a run's folder (written by the aging task, read by the later ones)
SNAPSHOT = "aging.parquet"


def run_dir(data_dir: Path, as_of: dt.date, run_id: str) -> Path:
    safe = re.sub(r"[^\w.-]+", "_", run_id).strip("_") or "run"
    return data_dir / "runs" / as_of.isoformat() / safe


def fetch_raw(client: ODataClient, *, page_size: int | None = None) -> dict[str, pd.DataFrame]:
    """Every set the pipeline reads (`fetch_set`), after checking the publication has them all."""
    check_published(client)
    return {name: fetch_set(client, name, page_size=page_size) for name in READ_SETS}


def check_published(client: ODataClient) -> None:
    """That the publication has every set and field the pipeline reads (`NotPublished` names the missing)."""
    client.check_published({name: list(fields) for name, fields in READ_SETS.items()})


def fetch_set(client: ODataClient, name: str, *, page_size: int | None = None) -> pd.DataFrame:
    """One set as a raw frame (`ODataClient.fetch_frame`): columns built page by page, so a set of
    millions of rows is never held as Python dicts."""
    return client.fetch_frame(name, list(READ_SETS[name]), orderby=ORDER_BY[name], page_size=page_size,
                              **_encoded(name))


def frame_of_pages(name: str, pages: Iterable[list[dict[str, Any]]]) -> pd.DataFrame:
    """The raw frame `fetch_set` reads of `name`, from pages of its rows as 1C sends them
    (for benchmarks and tests that have rows, not 1C)."""
    return frame_from_pages(pages, list(READ_SETS[name]), _order_fields(ORDER_BY[name]), **_encoded(name))[0]


def _encoded(name: str) -> dict[str, tuple[str, ...]]:
    """How the client keeps a set's columns: repeating text dictionary-encoded, timestamps parsed."""
    return {"categorical": REPEATING_FIELDS.get(name, ()), "dates": DATE_FIELDS.get(name, ())}


def write_frames(frames: dict[str, pd.DataFrame], folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, df in frames.items():
        path = folder / f"{name}.parquet"
        df.to_parquet(path, index=False)
        paths[name] = str(path)
    return paths


def read_frames(folder: Path, names: Iterable[str] | None = None, *,
                filters: list[tuple[str, str, Any]] | None = None,
                columns: Mapping[str, Sequence[str]] | None = None) -> dict[str, pd.DataFrame]:
    """The run's frames from `write_frames`' folder: all of them, or only those `names`d (a task
    reads what its step uses: at a million open documents the four big frames are ~1.3 GB);
    `filters` (pyarrow's row filters, e.g. ``[("document_number", "==", "ТД00-000123")]``) keep
    only the matching rows, read as such; `columns` (by frame) only those columns of a frame."""
    folder = Path(folder)
    paths = sorted(folder.glob("*.parquet")) if names is None else [folder / f"{name}.parquet" for name in names]
    missing = [path.name for path in paths if not path.exists()]
    if missing:
        raise FileNotFoundError(f"the extract in {folder} has no {', '.join(missing)}: run the extract first")
    columns = columns or {}
    out = {}
    for path in paths:
        wanted = columns.get(path.stem)
        if wanted is not None:
            have = set(pq.read_schema(path).names)
            absent = [c for c in wanted if c not in have]
            if absent:
                raise ValueError(f"{path} has no column {', '.join(absent)}: an extract of another version; "
                                 "run the extract again")
            wanted = list(wanted)
        out[path.stem] = _contract_times(pd.read_parquet(path, columns=wanted, filters=filters))
    return out


def read_for_aging(folder: Path) -> dict[str, pd.DataFrame]:
    """The frames and columns aging reads (`aging.aging_reads`): the orders first, then the rest,
    the stages without their reference text unless some order's reference is missing or repeated."""
    # (imported here: the extract task, which imports this module, needs none of aging)
    from receivables.domain.aging import AGING_READS, aging_reads

    orders = read_frames(folder, ["orders"], columns=AGING_READS)["orders"]
    reads = aging_reads(orders)
    return {"orders": orders, **read_frames(folder, [name for name in reads if name != "orders"], columns=reads)}


def read_snapshot(run_folder: Path) -> pd.DataFrame:
    """The aging snapshot the aging task wrote for this run (`SNAPSHOT`)."""
    path = Path(run_folder) / SNAPSHOT
    if not path.exists():
        raise FileNotFoundError(f"no aging snapshot {path}: the run's aging step has not run")
    return _contract_times(pd.read_parquet(path))


def _contract_times(df: pd.DataFrame) -> pd.DataFrame:
    """Dates back to the contract's datetime64[s] (Parquet has no seconds unit: they come back in ms)."""
    for col in df.columns:
        dtype = df[col].dtype
        if getattr(dtype, "kind", "") == "M" and getattr(dtype, "tz", None) is None and dtype != "datetime64[s]":
            df[col] = df[col].astype("datetime64[s]")
    return df


class FrameWriter:
    """`emit` of `normalise_as_of` that writes each frame to `folder` in a worker thread, so that the
    next set is read and its frame made meanwhile (Parquet's encoding and compression release the
    GIL; at a million open documents the frames take ~6 s to write). One frame at a time is being
    written: `emit` first waits for the one before, so at most one finished frame is held beside
    the one being made. `close` waits for the last and gives {frame: path}; an error writing a frame
    is raised there or at the next `emit`."""

    def __init__(self, folder: Path):
        from concurrent.futures import ThreadPoolExecutor

        self.folder = folder
        self.rows: dict[str, int] = {}
        self.paths: dict[str, str] = {}
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="extract-writer")
        self._writing: Any = None

    def __call__(self, name: str, df: pd.DataFrame) -> None:
        self._wait()
        self.rows[name] = len(df)
        self._writing = self._pool.submit(write_frames, {name: df}, self.folder)

    def _wait(self) -> None:
        if self._writing is not None:
            writing, self._writing = self._writing, None
            self.paths.update(writing.result())

    def close(self) -> dict[str, str]:
        try:
            self._wait()
        finally:
            self._pool.shutdown(wait=True)
        return self.paths


def extract(client: ODataClient, as_of: dt.date, folder: Path, *,
            extracted_on: dt.date | None = None) -> dict:
    """Read 1C, keep what existed on `as_of`, write Parquet; return small stats for XCom.

    Set by set (`normalise_as_of`): each frame is written as soon as it is made (`FrameWriter`)
    and let go, so the task holds the receipts' sets while their payments are made, the document
    set being read, the frames being made, the one being written and the references' numberings,
    never the whole extract (a worker's memory is sized by this task). The files go to a folder
    beside the extract's and replace it when every frame is written: a failed or retried run never
    leaves a mix of two reads of 1C.
    """
    check_published(client)
    target = folder / "extract"
    partial = folder / "extract.partial"
    shutil.rmtree(partial, ignore_errors=True)
    writer = FrameWriter(partial)
    try:
        counts_raw = normalise_as_of(lambda name: fetch_set(client, name), as_of, writer,
                                     extracted_on=extracted_on)
    finally:
        paths = writer.close()
    stats = {
        "as_of": as_of.isoformat(),
        "folder": str(folder),
        "rows_read": {name: counts_raw[name] for name in READ_SETS},
        "documents_read": counts_raw["Document_ЗаказКлиента"],
        "frames": writer.rows,
        "paths": {name: str(target / Path(path).name) for name, path in paths.items()},
    }
    (partial / "stats.json").write_text(json.dumps(stats, ensure_ascii=False, indent=1))
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    log.info("extract as of %s: %s", as_of, stats["frames"])
    return stats
