"""The warehouse on SQLite and PostgreSQL: the same code, the same results.

Every test runs on both backends (PostgreSQL ones are marked ``postgres``); the
concurrency tests race real connections from threads.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest
from db_fixtures import BACKENDS, database
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError

from receivables.store import warehouse as warehouse_module
from receivables.store.warehouse import Warehouse

AS_OF = dt.date(2026, 11, 20)
UTC = dt.UTC
MSK = dt.timezone(dt.timedelta(hours=3))


@pytest.fixture(params=BACKENDS)
def url(request, tmp_path):
    with database(request.param, tmp_path) as u:
        yield u


@pytest.fixture
def wh(url):
    w = Warehouse(url)
    w.create_schema()
    yield w
    w.dispose()


def aging_frame(n: int, as_of: dt.date = AS_OF, *, prefix: str = "doc") -> pd.DataFrame:
    """An aging frame shaped like receivables.domain.aging's output."""
    day = pd.Series([pd.Timestamp(as_of)] * n).astype("datetime64[s]")
    return pd.DataFrame({
        "as_of_date": day,
        "document_ref": [f"{prefix}-{i:06d}" for i in range(n)],
        "document_number": [f"ТД00-{i:06d}" for i in range(n)],
        "document_date": pd.Series([pd.Timestamp("2026-11-02")] * n).astype("datetime64[s]"),
        "partner_ref": [f"p{i % 7}" for i in range(n)], "partner_name": ["ООО «Рога и копыта»"] * n,
        "organization_ref": ["o"] * n, "organization_name": ["ООО «СантехОпт»"] * n,
        "contract_ref": [None if i % 3 else "c" for i in range(n)], "manager_ref": ["m"] * n,
        "manager_name": ["Иванова"] * n, "settlement": ["ПоЗаказам"] * n,
        "due_date": pd.Series([pd.Timestamp("2026-11-09")] * n).astype("datetime64[s]"),
        "amount": [12345678901 + i for i in range(n)], "paid": [i % 100 for i in range(n)],
        "outstanding": [12345678901 + i - i % 100 for i in range(n)], "days_overdue": [11] * n,
        "business_days_overdue": [9] * n, "bucket": ["1-30"] * n, "partner_debt": [5] * n,
        "contract_debt": [7] * n, "segment": ["Опт"] * n,
    })


def claim_rows(keys: list[str], *, step: str = "s", ref: str = "<m@x>", target: str = "a@b.example") -> pd.DataFrame:
    return pd.DataFrame({"document_ref": keys, "document_number": [f"N-{k}" for k in keys], "partner_ref": "p",
                         "step_id": step, "action": "email", "target": target, "external_ref": ref})


def outcome(keys: list[str], status: str, *, step: str = "s", sent_at: Any = None, ref: Any = None,
            detail: str = "250 OK") -> pd.DataFrame:
    when = pd.Timestamp.now(tz="UTC") if sent_at is None and status == "sent" else sent_at
    return pd.DataFrame({"document_ref": keys, "step_id": step, "status": status,
                         "sent_at": [when if when is not None else pd.NaT] * len(keys),
                         "external_ref": [ref] * len(keys), "detail": detail})


def sql(wh: Warehouse, statement: str, **params: Any) -> list[Any]:
    with wh.engine.begin() as conn:
        result = conn.execute(text(statement), params)
        return result.all() if result.returns_rows else []


def register_row(wh: Warehouse, doc: str, step: str = "s") -> pd.Series:
    reg = wh.read_register([doc])
    rows = reg.loc[reg["step_id"].eq(step)]
    assert len(rows) == 1, rows
    return rows.iloc[0]


# -- schema ---------------------------------------------------------------------------

def test_schema_is_idempotent_and_complete(url):
    with Warehouse(url) as w:
        w.create_schema()
        w.create_schema()
    with Warehouse(url) as w:  # a new process, the same database
        w.create_schema()
        with w.engine.connect() as conn:
            assert w._schema_todo(conn) == set(), "nothing left to create: no DDL on later runs"
        assert {"aging_snapshot", "collection_register", "collection_log", "run_summary", "run_lock",
                "key_rate", "collection_plan"} <= set(w.tables())
        insp = inspect(w.engine)
        assert {"v_aging_by_bucket", "v_register_status"} <= set(insp.get_view_names())
        assert "ix_aging_snapshot_as_of" in {i["name"] for i in insp.get_indexes("aging_snapshot")}
        uniques = {tuple(u["column_names"]) for u in insp.get_unique_constraints("collection_register")}
        assert ("document_ref", "step_id") in uniques
        assert ("infobase", "as_of_date", "document_ref") in {
            tuple(u["column_names"]) for u in insp.get_unique_constraints("aging_snapshot")}
        types = {c["name"]: str(c["type"]).upper() for c in insp.get_columns("aging_snapshot")}
        assert types["as_of_date"] == "DATE" and types["due_date"] == "DATE"
        assert types["amount"].startswith("NUMERIC(18, 2)")
        assert sql(w, "SELECT COUNT(*) FROM v_aging_by_bucket")[0][0] == 0


def test_schema_adds_columns_that_an_older_table_lacks(url):
    with Warehouse(url) as w:
        w.create_schema()
        sql(w, "DROP VIEW v_aging_by_bucket")
        sql(w, "DROP VIEW v_effectiveness_by_step")
        sql(w, "ALTER TABLE aging_snapshot DROP COLUMN segment")
        assert "segment" not in {c["name"] for c in inspect(w.engine).get_columns("aging_snapshot")}
        w.create_schema()
        assert "segment" in {c["name"] for c in inspect(w.engine).get_columns("aging_snapshot")}
        assert "v_aging_by_bucket" in inspect(w.engine).get_view_names()
        w.replace_snapshot(AS_OF, aging_frame(2))
        assert w.read_snapshot(AS_OF)["segment"].tolist() == ["Опт", "Опт"]


def test_schema_created_by_several_processes_at_once(url):
    errors: list[BaseException] = []

    def create() -> None:
        try:
            with Warehouse(url) as w:
                w.create_schema()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    with Warehouse(url) as w:
        assert "collection_register" in w.tables()



def test_a_new_sqlite_connection_waits_out_a_busy_switch_to_wal(tmp_path, monkeypatch):
    """SQLite may refuse the switch to WAL with "database is locked" at once, without its
    busy handler, while another connection works on a fresh file (seen when two runs start
    together): the connection retries the switch instead of failing the run. The refusal is
    injected: it depends on timing that a test cannot arrange reliably."""
    import sqlite3

    refusals = {"left": 3}

    class Cursor:
        def __init__(self, cur: sqlite3.Cursor):
            self.cur = cur

        def execute(self, sql: str, *args: Any) -> Any:
            if sql == "PRAGMA journal_mode=WAL" and refusals["left"]:
                refusals["left"] -= 1
                raise sqlite3.OperationalError("database is locked")
            return self.cur.execute(sql, *args)

        def close(self) -> None:
            self.cur.close()

    class Connection:
        def __init__(self, conn: sqlite3.Connection):
            self.conn = conn

        def cursor(self) -> Cursor:
            return Cursor(self.conn.cursor())

    raw = sqlite3.connect(tmp_path / "w.db")
    warehouse_module._sqlite_on_connect(Connection(raw), None)
    assert refusals["left"] == 0
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    raw.close()

# -- aging snapshot -----------------------------------------------------------------------

def test_replace_snapshot_replaces_only_that_date_and_infobase(wh):
    before = AS_OF - dt.timedelta(days=1)
    assert wh.replace_snapshot(AS_OF, aging_frame(3)) == 3
    wh.replace_snapshot(before, aging_frame(2, before))
    wh.replace_snapshot(AS_OF, aging_frame(5, prefix="other"), infobase="branch")
    assert wh.replace_snapshot(AS_OF, aging_frame(4)) == 4  # the rerun of that date
    assert len(wh.read_snapshot(AS_OF, infobase="default")) == 4
    assert len(wh.read_snapshot(before)) == 2
    assert len(wh.read_snapshot(AS_OF, infobase="branch")) == 5
    assert len(wh.read_snapshot(AS_OF)) == 9  # every infobase
    assert wh.replace_snapshot(AS_OF, aging_frame(0)) == 0  # nothing open any more
    assert wh.read_snapshot(AS_OF, infobase="default").empty
    assert len(wh.read_snapshot(before)) == 2


def test_money_is_exact_to_the_kopeck_and_sql_sums_agree(wh):
    kopecks = [0, 1, 99, 100, 101, -1, -5, -12345, 12345678901, 99999999999, 2**51 - 1, 10**15 + 7]
    frame = aging_frame(len(kopecks))
    frame["amount"] = kopecks
    frame["outstanding"] = [abs(k) for k in kopecks]
    frame["partner_debt"] = list(reversed(kopecks))
    wh.replace_snapshot(AS_OF, frame)
    back = wh.read_snapshot(AS_OF)
    assert back["amount"].dtype == "int64" and back["partner_debt"].dtype == "int64"
    assert back["amount"].tolist() == kopecks  # document_ref order = input order here
    assert back["partner_debt"].tolist() == list(reversed(kopecks))
    one = sql(wh, "SELECT amount FROM aging_snapshot WHERE document_ref = 'doc-000008'")[0][0]
    assert Decimal(str(one)) == Decimal("123456789.01")
    exact = sql(wh, "SELECT SUM(CAST(ROUND(outstanding * 100) AS BIGINT)) FROM aging_snapshot")[0][0]
    assert int(exact) == sum(abs(k) for k in kopecks)
    small = aging_frame(1000, AS_OF - dt.timedelta(days=1))  # everyday amounts: SUM() itself agrees
    wh.replace_snapshot(AS_OF - dt.timedelta(days=1), small)
    total = sql(wh, "SELECT SUM(outstanding) FROM aging_snapshot WHERE as_of_date = :d",
                d=AS_OF - dt.timedelta(days=1))[0][0]
    assert round(Decimal(str(total)), 2) == Decimal(int(small["outstanding"].sum())) / 100
    if wh.is_postgres:  # NUMERIC: exact in the database itself
        assert total == Decimal(int(small["outstanding"].sum())) / 100


def test_dates_are_dates_and_types_come_back(wh):
    frame = aging_frame(3)
    frame.loc[1, "due_date"] = pd.NaT
    wh.replace_snapshot(AS_OF, frame)
    back = wh.read_snapshot(AS_OF)
    for col in ("as_of_date", "document_date", "due_date"):
        assert back[col].dtype == "datetime64[s]", col
    assert back["due_date"].isna().tolist() == [False, True, False]
    assert back["days_overdue"].dtype == "int64"
    assert back["as_of_date"].eq(pd.Timestamp(AS_OF)).all()
    rows = sql(wh, "SELECT COUNT(*) FROM aging_snapshot WHERE due_date = :d AND as_of_date = :a",
               d=dt.date(2026, 11, 9), a=AS_OF)
    assert rows[0][0] == 2
    assert back["contract_ref"].isna().tolist() == [False, True, True]


def test_text_survives_tabs_newlines_backslashes_quotes_and_empty_strings(wh):
    frame = aging_frame(6)
    frame["partner_name"] = ['ООО "Рога"\tи\\копыта', "строка\nвторая\r\n", "\\N", "", None, "emoji 🙂, «»"]
    wh.replace_snapshot(AS_OF, frame)
    back = wh.read_snapshot(AS_OF)["partner_name"].tolist()
    assert back[:4] == frame["partner_name"].tolist()[:4]
    assert pd.isna(back[4]) and back[5] == "emoji 🙂, «»"


def test_replace_snapshot_refuses_bad_frames_and_keeps_the_old_rows(wh):
    wh.replace_snapshot(AS_OF, aging_frame(2))
    wrong_date = aging_frame(2, AS_OF - dt.timedelta(days=1))
    with pytest.raises(ValueError, match="as_of_date"):
        wh.replace_snapshot(AS_OF, wrong_date)
    doubled = pd.concat([aging_frame(2), aging_frame(1)], ignore_index=True)
    with pytest.raises(ValueError, match="more than once"):
        wh.replace_snapshot(AS_OF, doubled)
    fractional = aging_frame(2).astype({"paid": "float64"})
    fractional.loc[1, "paid"] = 1.5
    with pytest.raises(ValueError, match="whole kopecks"):
        wh.replace_snapshot(AS_OF, fractional)
    assert len(wh.read_snapshot(AS_OF)) == 2


def test_a_bad_value_in_a_later_batch_keeps_the_old_snapshot_whole(wh, monkeypatch):
    """The batches after the first are built in a worker thread while the one before is copied
    (PostgreSQL): a value refused there reaches the caller, and the batches already copied go
    with the transaction — the date's previous snapshot stays as it was."""
    monkeypatch.setattr(warehouse_module, "CHUNK_ROWS", 3)
    wh.replace_snapshot(AS_OF, aging_frame(4, prefix="old"))
    bad = aging_frame(10).astype({"paid": "float64"})
    bad.loc[8, "paid"] = 1.5  # the third batch of four (rows in document_ref order)
    with pytest.raises(ValueError, match="whole kopecks"):
        wh.replace_snapshot(AS_OF, bad)
    back = wh.read_snapshot(AS_OF)
    assert back["document_ref"].str.startswith("old").all() and len(back) == 4


def test_replace_snapshot_in_several_batches(wh, monkeypatch):
    monkeypatch.setattr(warehouse_module, "CHUNK_ROWS", 7)
    frame = aging_frame(50).sample(frac=1, random_state=1)  # unordered input
    assert wh.replace_snapshot(AS_OF, frame) == 50
    back = wh.read_snapshot(AS_OF)
    expected = frame.sort_values("document_ref", ignore_index=True)
    pd.testing.assert_series_equal(back["outstanding"], expected["outstanding"], check_names=False)
    assert back["document_ref"].tolist() == expected["document_ref"].tolist()
    totals = wh.snapshot_totals()
    assert totals["outstanding"].tolist() == [int(frame["outstanding"].sum())]
    members = wh.snapshot_members([AS_OF])
    assert len(members) == 50 and members["as_of_date"].eq(pd.Timestamp(AS_OF)).all()


# -- register: claim / complete / record_decisions ------------------------------------------

def test_claim_inserts_pending_rows_with_their_ids(wh):
    rows = claim_rows(["b", "a"]).assign(extra=[1, 2])
    held = wh.claim(rows, run_id="r1", as_of=AS_OF)
    assert held["document_ref"].tolist() == ["b", "a"]  # input order, extra columns carried
    assert held["extra"].tolist() == [1, 2] and not held["was_pending"].any()
    assert held["external_ref"].tolist() == ["<m@x>", "<m@x>"]
    row = register_row(wh, "a")
    assert row["status"] == "pending" and pd.isna(row["sent_at"]) and row["run_id"] == "r1"
    assert row["attempts"] == 1 and row["as_of_date"] == AS_OF and row["target"] == "a@b.example"
    assert str(row["updated_at"].tz) == "UTC"


def test_claim_of_nothing_and_of_duplicates(wh):
    empty = wh.claim(claim_rows([]), run_id="r1", as_of=AS_OF)
    assert empty.empty and "was_pending" in empty.columns and "external_ref" in empty.columns
    with pytest.raises(ValueError, match="more than once"):
        wh.claim(claim_rows(["a", "a"]), run_id="r1", as_of=AS_OF)


def test_sent_rows_are_never_claimed_again(wh):
    wh.claim(claim_rows(["a", "b"]), run_id="r1", as_of=AS_OF)
    wh.complete(outcome(["a"], "sent", ref="<m@x>"))
    for run in ("r1", "r2"):
        again = wh.claim(claim_rows(["a"], ref="<new@x>"), run_id=run, as_of=AS_OF,
                         stale_after=dt.timedelta(0))
        assert again.empty
    row = register_row(wh, "a")
    assert row["status"] == "sent" and row["sent_at"].tzinfo is not None and row["external_ref"] == "<m@x>"


def test_failed_and_skipped_rows_are_claimed_again_keeping_a_stored_id(wh):
    wh.claim(claim_rows(["f"], ref="<first@x>"), run_id="r1", as_of=AS_OF)
    wh.complete(outcome(["f"], "failed", detail="temporary: 451"))
    wh.record_decisions(claim_rows(["s"]).drop(columns="external_ref").assign(status="skipped", detail="no_email"),
                        run_id="r1", as_of=AS_OF)
    held = wh.claim(claim_rows(["f", "s"], ref="<second@x>", target="new@b.example"), run_id="r2",
                    as_of=AS_OF + dt.timedelta(days=1))
    got = held.set_index("document_ref")
    assert got.loc["f", "external_ref"] == "<first@x>"  # a failed send may have gone out: same id
    assert got.loc["s", "external_ref"] == "<second@x>"  # never attempted: the new id
    assert not held["was_pending"].any()
    row = register_row(wh, "f")
    assert (row["status"], row["run_id"], row["attempts"]) == ("pending", "r2", 2)
    assert row["target"] == "new@b.example" and pd.isna(row["detail"])
    assert row["as_of_date"] == AS_OF + dt.timedelta(days=1)


def test_a_crashed_pending_row_is_retried_with_its_stored_id(wh):
    wh.claim(claim_rows(["a"], ref="<m1@x>"), run_id="crashing", as_of=AS_OF)
    # the process died after the side effect, before complete(); Airflow retries the run
    retry = wh.claim(claim_rows(["a"], ref="<m2@x>", target="c@d.example"), run_id="crashing", as_of=AS_OF)
    assert retry["was_pending"].tolist() == [True]
    assert retry["external_ref"].tolist() == ["<m1@x>"]
    row = register_row(wh, "a")
    assert row["status"] == "pending" and row["external_ref"] == "<m1@x>" and row["attempts"] == 2


def test_a_pending_row_of_another_run_is_left_alone_until_it_is_stale(wh):
    wh.claim(claim_rows(["a"], ref="<m1@x>"), run_id="r1", as_of=AS_OF)
    assert wh.claim(claim_rows(["a"], ref="<m2@x>"), run_id="r2", as_of=AS_OF).empty  # r1 is on it
    sql(wh, "UPDATE collection_register SET updated_at = :t", t=dt.datetime.now(UTC) - dt.timedelta(hours=7))
    taken = wh.claim(claim_rows(["a"], ref="<m2@x>"), run_id="r2", as_of=AS_OF)  # default: 6 hours
    assert taken["was_pending"].tolist() == [True] and taken["external_ref"].tolist() == ["<m1@x>"]
    assert register_row(wh, "a")["run_id"] == "r2"
    # now r2 holds it, freshly: r1 (or anyone else) cannot take it back
    assert wh.claim(claim_rows(["a"]), run_id="r1", as_of=AS_OF).empty


def test_claim_updates_are_compare_and_set_on_the_row_as_it_is(wh, monkeypatch):
    """Between claim's read of a row and its update another run may change the row: the
    UPDATE's own WHERE decides, not what was read."""
    from types import SimpleNamespace

    from receivables.store import register

    wh.claim(claim_rows(["a", "b"], ref="<theirs@x>"), run_id="other", as_of=AS_OF)  # both pending, fresh
    read = register._states
    long_ago = dt.datetime.now(UTC) - dt.timedelta(days=1)

    def outdated(conn, keys):  # what claim would have read a moment before "other" claimed
        rows = {k: SimpleNamespace(**r._asdict()) for k, r in read(conn, keys).items()}
        rows[("a", "s")].status = "skipped"
        rows[("b", "s")].updated_at = long_ago
        return rows

    monkeypatch.setattr(register, "_states", outdated)
    assert wh.claim(claim_rows(["a", "b"], ref="<mine@x>"), run_id="me", as_of=AS_OF).empty
    reg = wh.read_register().set_index("document_ref")
    assert (reg["run_id"] == "other").all() and (reg["external_ref"] == "<theirs@x>").all()


def test_deleting_a_row_or_nulling_sent_at_rearms_the_step(wh):
    wh.claim(claim_rows(["a", "b"], ref="<old@x>"), run_id="r1", as_of=AS_OF)
    wh.complete(outcome(["a", "b"], "sent"))
    assert wh.claim(claim_rows(["a", "b"]), run_id="r2", as_of=AS_OF).empty
    sql(wh, "DELETE FROM collection_register WHERE document_ref = 'a'")
    sql(wh, "UPDATE collection_register SET sent_at = NULL WHERE document_ref = 'b'")
    held = wh.claim(claim_rows(["a", "b"], ref="<again@x>"), run_id="r2", as_of=AS_OF)
    assert held.set_index("document_ref")["external_ref"].to_dict() == {"a": "<again@x>", "b": "<again@x>"}
    assert not held["was_pending"].any()
    assert register_row(wh, "b")["attempts"] == 2


def test_complete_records_outcomes(wh):
    wh.claim(claim_rows(["a", "b", "c"], ref="<m@x>"), run_id="r1", as_of=AS_OF)
    moscow = pd.Timestamp("2026-11-20 12:00", tz="Europe/Moscow")
    done = pd.concat([outcome(["a"], "sent", sent_at=moscow, ref="<m@x>"),
                      outcome(["b"], "sent", ref=None),  # no sent_at: now; no ref: the stored one
                      outcome(["c"], "failed", detail="permanent: 550")], ignore_index=True)
    done.loc[1, "sent_at"] = pd.NaT
    wh.complete(done)
    a, b, c = (register_row(wh, k) for k in "abc")
    assert a["sent_at"] == pd.Timestamp("2026-11-20 09:00", tz="UTC") and a["status"] == "sent"
    assert b["status"] == "sent" and pd.notna(b["sent_at"]) and b["external_ref"] == "<m@x>"
    assert c["status"] == "failed" and pd.isna(c["sent_at"]) and c["detail"] == "permanent: 550"
    with pytest.raises(ValueError, match="status"):
        wh.complete(outcome(["a"], "pending"))


def test_an_outcome_and_its_log_rows_are_written_together_or_not_at_all(wh, monkeypatch):
    wh.claim(claim_rows(["a", "b"], ref="<m@x>"), run_id="r1", as_of=AS_OF)
    log = [{"run_id": "r1", "as_of_date": AS_OF, "outcome": "sent", "document_ref": "a"}]
    wh.complete(outcome(["a"], "sent", ref="<m@x>"), log=pd.DataFrame(log))
    assert register_row(wh, "a")["status"] == "sent"
    assert wh.read_log()["document_ref"].tolist() == ["a"]
    # the log insert fails: the outcome is not recorded either (one transaction)
    def broken(conn, payload):
        raise RuntimeError("disk full")
    monkeypatch.setattr(type(wh), "_insert_log", staticmethod(broken))
    with pytest.raises(RuntimeError, match="disk full"):
        wh.complete(outcome(["b"], "sent", ref="<m@x>"), log=pd.DataFrame([{**log[0], "document_ref": "b"}]))
    assert register_row(wh, "b")["status"] == "pending"
    assert wh.read_log()["document_ref"].tolist() == ["a"]


def test_complete_with_a_run_id_touches_only_that_runs_rows(wh):
    wh.claim(claim_rows(["a"]), run_id="r1", as_of=AS_OF)
    wh.complete(outcome(["a"], "sent"), run_id="r2")
    assert register_row(wh, "a")["status"] == "pending"
    wh.complete(outcome(["a"], "sent"), run_id="r1")
    assert register_row(wh, "a")["status"] == "sent"


def test_decisions_never_touch_sent_or_pending_rows(wh):
    wh.claim(claim_rows(["sent", "pending", "failed"], ref="<m@x>"), run_id="r1", as_of=AS_OF)
    wh.complete(outcome(["sent"], "sent"))
    wh.complete(outcome(["failed"], "failed", detail="temporary: 421"))
    before = wh.read_register().set_index("document_ref")
    decisions = claim_rows(["sent", "pending", "failed", "new"]).drop(columns="external_ref").assign(
        status=["skipped", "superseded", "planned", "skipped"], reason="no_email")
    assert wh.record_decisions(decisions, run_id="r2", as_of=AS_OF) == 2  # failed and new
    after = wh.read_register().set_index("document_ref")
    for key in ("sent", "pending"):
        pd.testing.assert_series_equal(after.loc[key], before.loc[key])
    assert after.loc["failed", "status"] == "planned" and after.loc["failed", "detail"] == "no_email"
    assert after.loc["failed", "external_ref"] == "<m@x>"  # kept for the next claim
    assert after.loc["new", "status"] == "skipped" and pd.isna(after.loc["new", "sent_at"])
    assert after.loc["new", "attempts"] == 0 and after.loc["new", "run_id"] == "r2"
    with pytest.raises(ValueError, match="claim/complete"):
        wh.record_decisions(decisions.assign(status="sent"), run_id="r2", as_of=AS_OF)


def test_decisions_are_stored_as_given_with_the_default_infobase(wh):
    """The values a decision row stores (PostgreSQL loads them by COPY into a temporary table,
    SQLite binds parameters): text as text, numbers as their text, missing as NULL, the row's
    infobase or the default, detail from reason; two calls in one transaction both land."""
    from receivables.store import register

    rows = pd.DataFrame({"document_ref": ["a", "b", "c"], "document_number": ["N\t1\\", None, "№ 3"],
                         "partner_ref": "p", "step_id": ["s", "s", "s2"], "action": "email",
                         "target": [5, "x@y.example", None], "status": ["skipped", "superseded", "planned"],
                         "reason": ["no_email", "superseded", "due"], "infobase": ["ib2", "", None]})
    assert wh.record_decisions(rows, run_id="r1", as_of=AS_OF, infobase="main") == 3
    reg = wh.read_register().set_index("document_ref")
    assert reg["document_number"].tolist()[0::2] == ["N\t1\\", "№ 3"] and pd.isna(reg.loc["b", "document_number"])
    assert reg.loc["a", "target"] == "5" and pd.isna(reg.loc["c", "target"])
    assert reg["infobase"].tolist() == ["ib2", "main", "main"]
    assert reg["detail"].tolist() == ["no_email", "superseded", "due"]
    assert reg["status"].tolist() == ["skipped", "superseded", "planned"]
    assert reg["sent_at"].isna().all() and reg["attempts"].eq(0).all() and reg["run_id"].eq("r1").all()
    assert reg["as_of_date"].eq(AS_OF).all() and reg["updated_at"].notna().all()
    assert str(reg["updated_at"].dt.tz) == "UTC"
    with wh.engine.begin() as conn:
        for key in ("d", "e"):
            frame = rows.iloc[:1].assign(document_ref=key)
            assert register.record_decisions(conn, frame, run_id="r2", as_of=AS_OF,
                                             now=dt.datetime.now(UTC)) == 1
    assert set(wh.read_register()["document_ref"]) == {"a", "b", "c", "d", "e"}


def test_a_skipped_step_stays_eligible(wh):
    wh.record_decisions(claim_rows(["a"]).assign(status="skipped", detail="no_email"), run_id="r1", as_of=AS_OF)
    wh.record_decisions(claim_rows(["a"]).assign(status="skipped", detail="no_email"), run_id="r2", as_of=AS_OF)
    assert wh.claim(claim_rows(["a"]), run_id="r3", as_of=AS_OF)["document_ref"].tolist() == ["a"]


def test_read_register_filters_and_types(wh):
    wh.claim(claim_rows([f"d{i}" for i in range(2500)]), run_id="r1", as_of=AS_OF)
    wh.complete(outcome(["d1"], "sent"))
    some = wh.read_register([f"d{i}" for i in range(0, 2500, 2)] + ["absent"])
    assert len(some) == 1250
    assert str(some["sent_at"].dtype) == "datetime64[us, UTC]"
    everything = wh.read_register()
    assert len(everything) == 2500 and everything["sent_at"].notna().sum() == 1
    assert wh.read_register([]).empty



def test_read_register_gives_back_what_was_written(wh):
    """Column-wise reading (COPY on PostgreSQL) keeps every value: a moment to the microsecond
    whatever its offset, a missing one as NaT, an empty text apart from a missing one, text with
    quotes, commas and a line break, the as-of date as a date."""
    wh.claim(claim_rows(["a", "b", "c"]), run_id="r1", as_of=AS_OF)
    moment = dt.datetime(2026, 11, 20, 10, 15, 30, 123456, tzinfo=dt.timezone(dt.timedelta(hours=3)))
    wh.complete(outcome(["a"], "sent", sent_at=moment, ref="<1@x>", detail='250 "ok", queued\nas 12'))
    wh.complete(outcome(["b"], "failed", detail=""))
    reg = wh.read_register().set_index("document_ref")
    assert reg.loc["a", "sent_at"] == pd.Timestamp("2026-11-20 07:15:30.123456", tz="UTC")
    assert reg.loc["a", "detail"] == '250 "ok", queued\nas 12' and reg.loc["a", "external_ref"] == "<1@x>"
    assert pd.isna(reg.loc["b", "sent_at"]) and reg.loc["b", "detail"] == ""
    assert pd.isna(reg.loc["c", "detail"]) and reg.loc["c", "status"] == "pending"
    assert all(v == AS_OF for v in reg["as_of_date"]) and reg["attempts"].dtype == "int64"
    assert str(reg["updated_at"].dtype) == "datetime64[us, UTC]" and reg["updated_at"].notna().all()
    assert reg["document_number"].tolist() == ["N-a", "N-b", "N-c"]

# -- log ------------------------------------------------------------------------------------

def test_log_is_append_only(wh):
    assert wh.append_log([{"run_id": "r", "as_of_date": AS_OF, "outcome": "sent", "document_ref": "a",
                           "unknown_column": "ignored"}]) == 1
    frame = pd.DataFrame({"run_id": ["r", "r"], "as_of_date": [pd.Timestamp(AS_OF)] * 2,
                          "outcome": ["skipped", "failed"], "reason": ["no_email", None],
                          "logged_at": [pd.Timestamp("2026-11-20 12:00", tz="Europe/Moscow"), pd.NaT]})
    assert wh.append_log(frame) == 2
    assert wh.append_log([]) == 0
    log = wh.read_log()
    assert log["id"].is_monotonic_increasing and log["outcome"].tolist() == ["sent", "skipped", "failed"]
    assert log.loc[1, "logged_at"] == pd.Timestamp("2026-11-20 09:00", tz="UTC")
    assert log["logged_at"].notna().all() and str(log["logged_at"].dt.tz) == "UTC"
    assert log.loc[0, "as_of_date"] == AS_OF
    for statement in ("UPDATE collection_log SET outcome = 'sent'", "DELETE FROM collection_log"):
        with pytest.raises(DBAPIError, match="append-only"):
            sql(wh, statement)
    assert len(wh.read_log()) == 3


def test_a_logged_frame_stores_what_logged_rows_store(wh, monkeypatch):
    """append_log takes a frame by COPY on PostgreSQL and rows by parameters: both store the
    same values — text with tabs, newlines, backslashes and COPY's NULL marker, numbers as
    text, missing values, dates given as dates or text, moments naive (UTC), aware or missing
    (now) — in batches, in order."""
    monkeypatch.setattr(warehouse_module, "CHUNK_ROWS", 2)
    frame = pd.DataFrame({
        "run_id": ["r1", "r1", "r1", "r1", "r1"],
        "as_of_date": [AS_OF, "2026-11-19", AS_OF, AS_OF, None],
        "document_ref": ["a\tb", "строка\nвторая", "\\N", "", None],
        "step_id": ["s", None, "s2", "s", "s"],
        "target": [5, 2.5, "x@y.example", None, "«Рога» и копыта"],
        "outcome": ["sent", "skipped", "failed", "hold", "planned"],
        "logged_at": [pd.Timestamp("2026-11-20 12:00"), pd.Timestamp("2026-11-20 12:00", tz="Europe/Moscow"),
                      None, pd.NaT, dt.datetime(2026, 11, 20, 6, 30, tzinfo=UTC)],
    })
    before = dt.datetime.now(UTC)
    assert wh.append_log(frame) == 5
    assert wh.append_log(frame.assign(run_id="r2").to_dict("records")) == 5
    log = wh.read_log()
    first, second = (log.loc[log["run_id"].eq(r)].drop(columns=["id", "run_id"]).reset_index(drop=True)
                     for r in ("r1", "r2"))
    now_rows = [2, 3]  # logged "now": equal across the two writes only to the second
    assert (first.loc[now_rows, "logged_at"] >= pd.Timestamp(before).floor("s")).all()
    pd.testing.assert_frame_equal(first.drop(index=now_rows), second.drop(index=now_rows))
    assert first["document_ref"].tolist()[:4] == ["a\tb", "строка\nвторая", "\\N", ""]
    assert pd.isna(first.loc[4, "document_ref"]) and pd.isna(first.loc[1, "step_id"])
    assert first["target"].tolist()[:3] == ["5", "2.5", "x@y.example"] and pd.isna(first.loc[3, "target"])
    assert first["as_of_date"].tolist()[:2] == [AS_OF, dt.date(2026, 11, 19)] and pd.isna(first.loc[4, "as_of_date"])
    assert first["logged_at"].tolist()[0::4] == [pd.Timestamp("2026-11-20 12:00", tz="UTC"),
                                                 pd.Timestamp("2026-11-20 06:30", tz="UTC")]
    assert first.loc[1, "logged_at"] == pd.Timestamp("2026-11-20 09:00", tz="UTC")
    wh.append_log(frame.drop(columns="logged_at").assign(run_id="r3"))  # three batches, one moment
    third = wh.read_log().query("run_id == 'r3'")["logged_at"]
    assert len(third) == 5 and third.nunique() == 1


def test_log_counts_are_the_logs_rows_grouped(wh):
    """log_counts groups in the database what grouping the whole read log gives: per as-of
    date, action and outcome, only the outcomes asked for, rows without a date or an action
    left out, in (day, action, outcome) order."""
    days = [AS_OF, AS_OF - dt.timedelta(days=1), None]
    rows = [{"run_id": "r", "as_of_date": days[i % 3], "action": [None, "email", "task", "case"][i % 4],
             "outcome": ["sent", "skipped", "planned", "failed", "due"][i % 5], "document_ref": f"d{i}"}
            for i in range(60)]
    wh.append_log(pd.DataFrame(rows))
    wanted = ["sent", "skipped", "failed", "hold"]
    got = wh.log_counts(wanted)
    log = wh.read_log()
    log["day"] = pd.to_datetime(log["as_of_date"]).dt.date
    want = (log.loc[log["outcome"].isin(wanted)].groupby(["day", "action", "outcome"]).size()
            .reset_index(name="count"))
    assert got.to_dict("records") == want.to_dict("records") and len(got) > 4
    assert got["count"].dtype == "int64" and isinstance(got.loc[0, "day"], dt.date)
    assert wh.log_counts(["nothing"]).empty


def test_report_effectiveness_looks_up_only_the_members_it_measures(wh):
    """The report asks the warehouse only for the (snapshot date, document) pairs effectiveness
    measures at (`measured_pairs`, `snapshot_members_among`), not for every stored snapshot's
    every document (the open documents times the days of history): the same table as from all."""
    from receivables.reports.analytics import effectiveness, measured_pairs
    from receivables.reports.report import collect

    start = AS_OF - dt.timedelta(days=30)
    docs = [f"doc-{i:06d}" for i in range(12)]
    dates = []
    for k in range(0, 31, 3):  # a snapshot every third day; document i is paid on day 4 + 2i
        day = start + dt.timedelta(days=k)
        open_docs = ["doc-open"] + [d for i, d in enumerate(docs) if k < 4 + 2 * i]
        frame = aging_frame(len(open_docs), day).assign(document_ref=open_docs,
                                                        segment=["Опт" if len(d) % 2 else "Розница" for d in open_docs])
        wh.replace_snapshot(day, frame)
        dates.append(day)
    wh.claim(claim_rows(docs[:6]), run_id="r1", as_of=start)  # reminded on day 2, the rest skipped on day 4
    wh.complete(outcome(docs[:6], "sent", sent_at=pd.Timestamp(start + dt.timedelta(days=2), tz="UTC")))
    wh.record_decisions(claim_rows(docs[6:]).drop(columns="external_ref").assign(status="skipped", reason="no_email"),
                        run_id="r2", as_of=start + dt.timedelta(days=4))
    register, snap = wh.read_register(), wh.read_snapshot(AS_OF)
    stored = np.sort(wh.snapshot_totals()["as_of_date"].unique())
    everything = wh.snapshot_members(dates)
    want = effectiveness(register, everything.merge(snap[["document_ref", "segment"]], on="document_ref", how="left"),
                         stored)
    total = want.loc[want["segment"].eq("все")].set_index("group")
    assert total.loc["напоминание", ["measured", "paid"]].tolist() == [6, 3]  # documents 0-2 paid by day 9
    assert total.loc["без напоминания", ["measured", "paid"]].tolist() == [6, 0]
    pd.testing.assert_frame_equal(collect(wh, AS_OF).effectiveness, want)
    pairs = measured_pairs(register, stored)
    needed = wh.snapshot_members_among(pairs)
    assert len(pairs) == 12 and len(needed) == 9 and len(everything) > 40
    full = set(zip(everything["as_of_date"], everything["document_ref"], strict=True))
    asked = set(zip(pairs["as_of_date"], pairs["document_ref"], strict=True))
    assert set(zip(needed["as_of_date"], needed["document_ref"], strict=True)) == full & asked


def test_replace_plan_stores_the_plans_rows_but_excluded(wh, monkeypatch, tmp_path):
    """The plan as build_plan leaves it (text as categories, money in kopecks, missing due days)
    stored exactly, the excluded rows left out, in batches; a new plan of the date replaces it."""
    monkeypatch.setattr(warehouse_module, "CHUNK_ROWS", 2)
    cat = pd.Categorical
    plan = pd.DataFrame({
        "document_ref": cat(["d1", "d1", "d2", "d3", "d4"]),
        "document_number": ["ТД-1", "ТД-1", "ТД-2", "ТД-3", None],
        "partner_ref": cat(["p", "p", "p", None, "q"]),
        "partner_name": cat(["ООО «Рога»\tи копыта", "ООО «Рога»\tи копыта", "x\\y", None, "\\N"]),
        "step_id": cat(["overdue_1", "call", None, "overdue_1", "overdue_1"]),
        "action": cat(["email", "task", None, "email", "email"]),
        "decision": cat(["act", "skip", "excluded", "hold", "act"]),
        "reason": cat(["due", "no_assignee", "no_pool", "quiet_days", "due"]),
        "target": cat(["a@b.example", "Иванова", None, "a@b.example", None]),
        "due_day": pd.Series(["2026-11-19", "2026-11-25", None, "2026-11-01", None], dtype="datetime64[s]"),
        "outstanding": [12345678901, 12345678901, 5, -105, 0],
        "amount": [1, 2, 3, 4, 5],  # not a column of the table: ignored
    })
    assert wh.replace_plan(AS_OF, "run-1", plan.iloc[:2]) == 2
    # from its Parquet file, a row group at a time, the same rows as the whole
    path = tmp_path / "plan.parquet"
    plan.to_parquet(path, index=False, row_group_size=2)
    assert wh.replace_plan(AS_OF, "run-2", path) == 4
    from_file = sql(wh, "SELECT * FROM collection_plan ORDER BY document_ref, step_id")
    assert wh.replace_plan(AS_OF, "run-2", plan) == 4
    assert sql(wh, "SELECT * FROM collection_plan ORDER BY document_ref, step_id") == from_file

    class Deadlock(Exception):
        pgcode = "40P01"

    calls = []
    read = Warehouse._plan_file_parts

    def deadlocked_once(path):  # PostgreSQL aborts the first transaction after a part went in: all again
        calls.append(1)
        for n, part in enumerate(read(path)):
            if n == 1 and len(calls) == 1:
                raise DBAPIError("COPY collection_plan", None, Deadlock())
            yield part

    monkeypatch.setattr(Warehouse, "_plan_file_parts", staticmethod(deadlocked_once))
    sql(wh, "DELETE FROM collection_plan")
    assert wh.replace_plan(AS_OF, "run-2", path) == 4 and len(calls) == 2
    assert sql(wh, "SELECT * FROM collection_plan ORDER BY document_ref, step_id") == from_file
    rows = sql(wh, "SELECT run_id, as_of_date, document_ref, document_number, partner_ref, partner_name, step_id, "
                   "action, decision, reason, target, due_day, outstanding FROM collection_plan "
                   "ORDER BY document_ref, step_id")
    got = [(r[0], str(r[1]), *r[2:11], None if r[11] is None else str(r[11]), Decimal(str(r[12]))) for r in rows]
    assert got == [
        ("run-2", "2026-11-20", "d1", "ТД-1", "p", "ООО «Рога»\tи копыта", "call", "task", "skip", "no_assignee",
         "Иванова", "2026-11-25", Decimal("123456789.01")),
        ("run-2", "2026-11-20", "d1", "ТД-1", "p", "ООО «Рога»\tи копыта", "overdue_1", "email", "act", "due",
         "a@b.example", "2026-11-19", Decimal("123456789.01")),
        ("run-2", "2026-11-20", "d3", "ТД-3", None, None, "overdue_1", "email", "hold", "quiet_days",
         "a@b.example", "2026-11-01", Decimal("-1.05")),
        ("run-2", "2026-11-20", "d4", None, "q", "\\N", "overdue_1", "email", "act", "due", None, None,
         Decimal("0")),
    ]


# -- runs -----------------------------------------------------------------------------------

def test_run_lock_is_exclusive_per_infobase_and_date(wh):
    assert wh.acquire_run_lock(AS_OF, "r1")
    assert not wh.acquire_run_lock(AS_OF, "r2")
    assert wh.acquire_run_lock(AS_OF, "r1")  # the holder's retry
    assert wh.acquire_run_lock(AS_OF, "r2", infobase="branch")
    assert wh.acquire_run_lock(AS_OF - dt.timedelta(days=1), "r2")
    holder, since = wh.lock_holder(AS_OF)
    assert holder == "r1" and since.tzinfo is not None
    assert not wh.release_run_lock(AS_OF, "r2")  # not the holder's: nothing happens
    assert not wh.acquire_run_lock(AS_OF, "r2")
    assert wh.release_run_lock(AS_OF, "r1")
    assert wh.lock_holder(AS_OF) is None
    assert wh.acquire_run_lock(AS_OF, "r2")


def test_a_stale_run_lock_is_taken_over(wh):
    assert wh.acquire_run_lock(AS_OF, "crashed")
    assert not wh.acquire_run_lock(AS_OF, "r2")
    sql(wh, "UPDATE run_lock SET acquired_at = :t", t=dt.datetime.now(UTC) - dt.timedelta(hours=7))
    assert wh.acquire_run_lock(AS_OF, "r2")  # default stale_after: 6 hours
    assert not wh.acquire_run_lock(AS_OF, "crashed")
    assert wh.acquire_run_lock(AS_OF, "r3", stale_after=dt.timedelta(0))


def test_run_summaries(wh):
    started = dt.datetime(2026, 11, 20, 6, 0, tzinfo=MSK)
    wh.save_run_summary(run_id="r1", as_of_date=AS_OF, mode="auto", acting=True, counts={"email:sent": 3},
                        documents_read=10, open_documents=4, outstanding=12345678901, started_at=started)
    wh.save_run_summary(run_id="r1", as_of_date=AS_OF, mode="auto", acting=True, counts={"email:sent": 4},
                        documents_read=10, open_documents=4, outstanding=12345678902, sales_30d=100)
    runs = wh.read_run_summaries()
    assert len(runs) == 1
    run = runs.iloc[0]
    assert run["counts"] == '{"email:sent": 4}' and Decimal(str(run["outstanding"])) == Decimal("123456789.02")
    assert run["started_at"] == pd.Timestamp("2026-11-20 03:00", tz="UTC") and bool(run["acting"])


def test_key_rates_load_is_idempotent(wh, tmp_path):
    path = tmp_path / "rates.csv"
    path.write_text("date_from,rate_percent,verified\n2024-07-29,18.00,yes\n2024-10-28,21.00,yes\n")
    assert wh.load_key_rates(path) == 2
    assert wh.load_key_rates(path) == 2
    path.write_text("date_from,rate_percent,verified\n2024-10-28,21.00,yes\n2025-06-09,20.00,no\n")
    wh.load_key_rates(path)
    rows = sql(wh, "SELECT date_from, rate_percent, verified FROM key_rate ORDER BY date_from")
    assert [(str(d), Decimal(str(r)), bool(v)) for d, r, v in rows] == [
        ("2024-10-28", Decimal("21.00"), True), ("2025-06-09", Decimal("20.00"), False)]


# -- concurrency ----------------------------------------------------------------------------

def race(url: str, workers: int, work) -> list[Any]:
    """Run `work(warehouse, i)` in `workers` threads, each with its own engine, at once."""
    barrier = threading.Barrier(workers)
    results: list[Any] = [None] * workers
    errors: list[BaseException] = []

    def go(i: int) -> None:
        try:
            with Warehouse(url) as w:
                barrier.wait()
                results[i] = work(w, i)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return results


def test_concurrent_claims_of_the_same_rows_hold_each_row_once(wh, url):
    keys = [f"d{i:03d}" for i in range(200)]
    results = race(url, 6, lambda w, i: w.claim(claim_rows(keys, ref=f"<run{i}@x>"), run_id=f"r{i}", as_of=AS_OF))
    claimed = Counter(k for held in results for k in held["document_ref"])
    assert sorted(claimed) == keys and set(claimed.values()) == {1}, "each row claimed by exactly one run"
    assert not any(held["was_pending"].any() for held in results)
    reg = wh.read_register().set_index("document_ref")
    assert len(reg) == 200 and reg.index.is_unique
    for i, held in enumerate(results):  # the register agrees with what each run was told
        assert (reg.loc[held["document_ref"], "run_id"] == f"r{i}").all()
        assert (reg.loc[held["document_ref"], "external_ref"] == f"<run{i}@x>").all()
    assert sql(wh, "SELECT COUNT(*) FROM (SELECT document_ref, step_id FROM collection_register "
                   "GROUP BY document_ref, step_id HAVING COUNT(*) > 1) d")[0][0] == 0


def test_concurrent_claims_over_rows_in_every_state(wh, url):
    keys = [f"d{i:03d}" for i in range(200)]
    state = {k: ("new", "skipped", "sent", "stale", "fresh")[i % 5] for i, k in enumerate(keys)}
    of = lambda s: [k for k in keys if state[k] == s]  # noqa: E731
    wh.claim(claim_rows(of("sent") + of("stale") + of("fresh"), ref="<old@x>"), run_id="old", as_of=AS_OF)
    wh.complete(outcome(of("sent"), "sent"))
    wh.record_decisions(claim_rows(of("skipped")).assign(status="skipped", detail="no_email"), run_id="old",
                        as_of=AS_OF)
    long_ago = dt.datetime.now(UTC) - dt.timedelta(days=1)
    with wh.engine.begin() as conn:  # their run died a day ago
        conn.execute(text("UPDATE collection_register SET updated_at = :t WHERE document_ref = :k"),
                     [{"t": long_ago, "k": k} for k in of("stale")])
    results = race(url, 5, lambda w, i: w.claim(claim_rows(keys, ref=f"<run{i}@x>"), run_id=f"r{i}", as_of=AS_OF))
    claimed = Counter(k for held in results for k in held["document_ref"])
    assert set(claimed) == set(of("new") + of("skipped") + of("stale")) and set(claimed.values()) == {1}
    pending_before = pd.concat(results).set_index("document_ref")
    assert pending_before.loc[of("stale"), "was_pending"].all()
    assert (pending_before.loc[of("stale"), "external_ref"] == "<old@x>").all()
    assert not pending_before.loc[of("new") + of("skipped"), "was_pending"].any()
    reg = wh.read_register().set_index("document_ref")
    assert (reg.loc[of("fresh"), "run_id"] == "old").all() and reg.loc[of("sent"), "sent_at"].notna().all()


def test_concurrent_run_locks_have_one_winner(wh, url):
    won = race(url, 6, lambda w, i: w.acquire_run_lock(AS_OF, f"r{i}"))
    assert sum(won) == 1


def test_concurrent_replacements_of_one_date_leave_one_snapshot(wh, url):
    race(url, 4, lambda w, i: w.replace_snapshot(AS_OF, aging_frame(300 + i)))
    n = len(wh.read_snapshot(AS_OF))
    assert n in {300, 301, 302, 303}
    assert sql(wh, "SELECT COUNT(DISTINCT document_ref) FROM aging_snapshot")[0][0] == n


def test_the_plan_reads_sent_and_failed_rows_and_a_run_counts_its_own(wh):
    """`read_register(sent_or_failed=True)`: the rows the plan reads (sent, or failed without a
    send); `register_counts`: a run's rows by action and status, counted by the database."""
    wh.claim(claim_rows(["a", "b", "c", "d"]), run_id="r1", as_of=dt.date(2026, 11, 20))
    wh.complete(outcome(["a"], "sent"), run_id="r1")
    wh.complete(outcome(["b"], "failed", detail="permanent: 550"), run_id="r1")
    wh.complete(outcome(["c"], "skipped", detail="no_email"), run_id="r1")
    wh.claim(claim_rows(["e"], step="t"), run_id="r2", as_of=dt.date(2026, 11, 20))
    got = wh.read_register(sent_or_failed=True)
    assert list(got["document_ref"]) == ["a", "b"]
    assert list(got.columns) == list(wh.read_register().columns)
    assert got["sent_at"].dtype == "datetime64[us, UTC]"
    assert list(wh.read_register(["b", "c"], sent_or_failed=True)["document_ref"]) == ["b"]
    assert wh.register_counts("r1") == {"email:sent": 1, "email:failed": 1, "email:skipped": 1, "email:pending": 1}
    assert wh.register_counts("r2") == {"email:pending": 1}
    assert wh.register_counts("nobody") == {}
