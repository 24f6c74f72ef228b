"""The run's files: the extract's frames and the aging snapshot read back as the contract has them."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from receivables.domain.aging import AGING_READS, TEXT_JOINS, compute_aging
from receivables.domain.normalise import as_of_view, normalise
from receivables.domain.plan import explain
from receivables.extract import (
    SNAPSHOT,
    FrameWriter,
    read_for_aging,
    read_frames,
    read_snapshot,
    write_frames,
)
from receivables.onec.emulator.generator import generate_company

END = dt.date(2026, 11, 20)


@pytest.fixture(scope="module")
def frames():
    ds = generate_company(seed=5, scale=0.01, end_date=END)
    return as_of_view(normalise({name: ds.rows(name) for name in ds.names()}), END, extracted_on=END)


def test_frames_read_back_equal_and_only_those_named(tmp_path, frames):
    write_frames(frames, tmp_path)
    every = read_frames(tmp_path)
    assert set(every) == set(frames)
    for name, df in frames.items():
        assert_frame_equal(every[name], df, check_categorical=True)
    some = read_frames(tmp_path, ["partners", "orders"])
    assert list(some) == ["partners", "orders"]
    assert_frame_equal(some["orders"], frames["orders"])


def test_frame_writer_writes_each_frame_in_turn_and_raises_what_failed(tmp_path, frames):
    """The extract's writer writes each frame it is handed while the next is made; the files equal
    `write_frames`' in the order handed; a frame that cannot be written fails the extract at the
    next frame or at the end, never silently."""
    writer = FrameWriter(tmp_path / "a")
    for name, df in frames.items():
        writer(name, df)
    paths = writer.close()
    assert list(paths) == list(frames) and writer.rows == {name: len(df) for name, df in frames.items()}
    for name, df in read_frames(tmp_path / "a").items():
        assert_frame_equal(df, frames[name])

    unwritable = pd.DataFrame({"x": [1, "one"]})  # mixed Python objects: Parquet has no type for them
    writer = FrameWriter(tmp_path / "b")
    writer("orders", frames["orders"])
    writer("odd", unwritable)
    with pytest.raises(ValueError, match="column x"):
        writer("stages", frames["stages"])
    assert writer.close() == {"orders": str(tmp_path / "b" / "orders.parquet")}  # the failed one is not named
    writer = FrameWriter(tmp_path / "c")
    writer("odd", unwritable)
    with pytest.raises(ValueError, match="column x"):
        writer.close()


def test_filters_read_the_matching_rows_only(tmp_path, frames):
    write_frames(frames, tmp_path)
    orders = frames["orders"]
    number = orders["document_number"].iloc[len(orders) // 2]
    got = read_frames(tmp_path, ["orders"], filters=[("document_number", "==", number)])["orders"]
    expected = orders.loc[orders["document_number"].eq(number)].reset_index(drop=True)
    assert len(got) == len(expected) >= 1
    # the rows and their values as written (categoricals keep their text)
    assert_frame_equal(got.astype({c: "str" for c in got.columns if got[c].dtype == "category"}),
                       expected.astype({c: "str" for c in expected.columns if expected[c].dtype == "category"}))
    assert got["document_date"].dtype == "datetime64[s]"


def test_explain_says_why_from_the_one_order_read(tmp_path, frames):
    """The plan task reads only the asked-for order's rows for the explanation: an order that is
    not posted is explained as such from them."""
    orders = frames["orders"].copy()
    orders.loc[0, "posted"] = False
    write_frames({**frames, "orders": orders}, tmp_path)
    number = orders["document_number"].iloc[0]
    one = read_frames(tmp_path, ["orders"], filters=[("document_number", "==", number)])["orders"]
    empty_plan = pd.DataFrame({"document_number": pd.Series([], dtype="str")})
    assert explain(empty_plan, number, one, END) == [f"{number}: nothing is due as of {END}: the order is not posted"]
    none = read_frames(tmp_path, ["orders"], filters=[("document_number", "==", "ТД99-999999")])["orders"]
    assert "no customer order with this number" in explain(empty_plan, "ТД99-999999", none, END)[0]


def test_a_missing_frame_or_snapshot_is_named(tmp_path, frames):
    write_frames({"partners": frames["partners"]}, tmp_path / "extract")
    with pytest.raises(FileNotFoundError, match="no orders.parquet"):
        read_frames(tmp_path / "extract", ["partners", "orders"])
    with pytest.raises(FileNotFoundError, match="aging snapshot"):
        read_snapshot(tmp_path)


def test_snapshot_reads_back_with_second_dates(tmp_path, frames):
    snap = compute_aging(frames, END)
    snap.to_parquet(tmp_path / SNAPSHOT, index=False)
    back = read_snapshot(tmp_path)
    for col in ("as_of_date", "document_date", "due_date"):
        assert back[col].dtype == "datetime64[s]"
    assert_frame_equal(back, snap)


@pytest.mark.parametrize("repeated", [False, True], ids=["unique references", "a repeated order"])
def test_aging_from_the_columns_it_reads_is_the_same(tmp_path, frames, repeated):
    """The aging task reads `AGING_READS` only: the snapshot is the one of the whole extract, on
    integer keys and (an order repeated: the gate's to report) on the references' text."""
    if repeated:
        frames = {**frames, "orders": pd.concat([frames["orders"], frames["orders"].iloc[[3]]], ignore_index=True)}
    write_frames(frames, tmp_path)
    some = read_frames(tmp_path, AGING_READS, columns=AGING_READS)
    assert {name: list(df.columns) for name, df in some.items()} == {n: list(c) for n, c in AGING_READS.items()}
    whole = compute_aging(read_frames(tmp_path), END)
    assert len(whole) > 10
    assert_frame_equal(compute_aging(some, END), whole)
    # what the aging task reads: the join-only reference text too only when an order is repeated
    task = read_for_aging(tmp_path)
    dropped = {f"{name}.{col}" for name, cols in AGING_READS.items() for col in cols if col not in task[name].columns}
    assert dropped == (set() if repeated else {f"{name}.{col}" for name, cols in TEXT_JOINS.items() for col in cols})
    assert_frame_equal(compute_aging(task, END), whole)


def test_aging_without_the_text_it_must_join_on_names_it(frames):
    """An order repeated (the gate's to report) makes aging join on the references' text: frames
    read without it (`TEXT_JOINS`) get an error naming the columns, not a wrong snapshot."""
    orders = pd.concat([frames["orders"], frames["orders"].iloc[[3]]], ignore_index=True)
    keyed_only = {**frames, "orders": orders,
                  **{name: frames[name].drop(columns=list(cols)) for name, cols in TEXT_JOINS.items()}}
    with pytest.raises(ValueError, match=r"the frames lack stages\.document_ref: read them by aging_reads"):
        compute_aging(keyed_only, END)


def test_a_missing_column_is_named(tmp_path, frames):
    write_frames({"payments": frames["payments"].drop(columns=["settlement_key"])}, tmp_path)
    with pytest.raises(ValueError, match=r"payments.parquet has no column settlement_key"):
        read_frames(tmp_path, ["payments"], columns={"payments": AGING_READS["payments"]})
