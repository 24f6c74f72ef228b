"""The warehouse on SQLite and PostgreSQL: same code, same results."""

from __future__ import annotations

import datetime as dt
import threading

import pandas as pd
import pytest
from sqlalchemy import text

from db import postgres_database
from receivables.store.warehouse import Warehouse

AS_OF = dt.date(2026, 11, 20)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def wh(request, tmp_path):
    if request.param == "sqlite":
        w = Warehouse(f"sqlite:///{tmp_path / 'w.db'}")
        w.create_schema()
        yield w
        w.dispose()
    else:
        with postgres_database() as url:
            w = Warehouse(url)
            w.create_schema()
            yield w
            w.dispose()


def aging_frame(n: int, as_of=AS_OF) -> pd.DataFrame:
    return pd.DataFrame({
        "as_of_date": pd.Series([pd.Timestamp(as_of)] * n).astype("datetime64[s]"),
        "document_ref": [f"doc-{i}" for i in range(n)], "document_number": [f"ТД00-{i:06d}" for i in range(n)],
        "document_date": pd.Series([pd.Timestamp("2026-11-02")] * n).astype("datetime64[s]"),
        "partner_ref": ["p"] * n, "partner_name": ["ООО «Рога»"] * n, "organization_ref": ["o"] * n,
        "organization_name": ["ООО «СантехОпт»"] * n, "contract_ref": ["c"] * n, "manager_ref": ["m"] * n,
        "manager_name": ["Иванова"] * n, "settlement": ["ПоЗаказам"] * n,
        "due_date": pd.Series([pd.Timestamp("2026-11-09")] * n).astype("datetime64[s]"),
        "amount": [12345678901 + i for i in range(n)], "paid": [1] * n,
        "outstanding": [12345678900 + i for i in range(n)], "days_overdue": [11] * n,
        "business_days_overdue": [9] * n, "bucket": ["1-30"] * n, "partner_debt": [5] * n, "contract_debt": [5] * n,
    })


def claim_rows(keys, ref="<m@x>"):
    return pd.DataFrame({"document_ref": [k for k in keys], "document_number": keys, "partner_ref": "p",
                         "step_id": "s", "action": "email", "target": "a@b.example", "external_ref": ref})


def test_schema_creation_is_idempotent_and_views_exist(wh):
    wh.create_schema()
    assert {"aging_snapshot", "collection_register", "collection_log", "run_summary", "run_lock"} <= set(wh.tables())
    with wh.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM v_aging_by_bucket")).scalar() == 0


def test_snapshot_replaces_only_its_date_and_money_is_exact(wh):
    wh.replace_snapshot(AS_OF, aging_frame(3))
    wh.replace_snapshot(AS_OF - dt.timedelta(days=1), aging_frame(2, AS_OF - dt.timedelta(days=1)))
    wh.replace_snapshot(AS_OF, aging_frame(4))
    back = wh.read_snapshot(AS_OF)
    assert len(back) == 4 and len(wh.read_snapshot(AS_OF - dt.timedelta(days=1))) == 2
    assert sorted(back["amount"].tolist()) == [12345678901 + i for i in range(4)]
    with wh.engine.connect() as conn:
        total = conn.execute(text("SELECT SUM(outstanding) FROM aging_snapshot WHERE as_of_date = :d"),
                             {"d": AS_OF}).scalar()
    assert round(float(total) * 100) == sum(12345678900 + i for i in range(4))


def test_claim_complete_and_sent_rows_are_never_claimed_again(wh):
    held = wh.claim(claim_rows(["a", "b"]), run_id="r1", as_of=AS_OF)
    assert set(held["document_ref"]) == {"a", "b"} and not held["was_pending"].any()
    wh.complete(pd.DataFrame({"document_ref": ["a"], "step_id": ["s"], "status": ["sent"],
                              "sent_at": [pd.Timestamp.now(tz="UTC")], "external_ref": ["<m@x>"], "detail": ["250"]}))
    assert wh.claim(claim_rows(["a", "b"], ref="<new@x>"), run_id="r2", as_of=AS_OF).empty  # r1 is alive
    again = wh.claim(claim_rows(["a", "b"], ref="<new@x>"), run_id="r2", as_of=AS_OF,
                     stale_after=dt.timedelta(0))  # r1 crashed: its pending row is taken over
    assert list(again["document_ref"]) == ["b"]
    assert again["was_pending"].tolist() == [True] and again["external_ref"].tolist() == ["<m@x>"]


def test_deleting_a_row_or_nulling_sent_at_rearms_it(wh):
    wh.claim(claim_rows(["a", "b"]), run_id="r1", as_of=AS_OF)
    done = pd.DataFrame({"document_ref": ["a", "b"], "step_id": ["s", "s"], "status": ["sent", "sent"],
                         "sent_at": [pd.Timestamp.now(tz="UTC")] * 2, "external_ref": ["<m@x>"] * 2, "detail": [""] * 2})
    wh.complete(done)
    with wh.engine.begin() as conn:
        conn.execute(text("DELETE FROM collection_register WHERE document_ref = 'a'"))
        conn.execute(text("UPDATE collection_register SET sent_at = NULL WHERE document_ref = 'b'"))
    held = wh.claim(claim_rows(["a", "b"], ref="<again@x>"), run_id="r2", as_of=AS_OF)
    assert set(held["document_ref"]) == {"a", "b"}


def test_decisions_never_overwrite_sent_or_pending_rows(wh):
    wh.claim(claim_rows(["a"]), run_id="r1", as_of=AS_OF)
    decisions = claim_rows(["a", "c"]).drop(columns="external_ref").assign(status="skipped", detail="no_email")
    wh.record_decisions(decisions, run_id="r2", as_of=AS_OF)
    reg = wh.read_register().set_index("document_ref")
    assert reg.loc["a", "status"] == "pending" and reg.loc["c", "status"] == "skipped"


def test_log_is_append_only(wh):
    wh.append_log([{"run_id": "r", "as_of_date": AS_OF, "outcome": "sent", "document_ref": "a"}])
    wh.append_log([{"run_id": "r", "as_of_date": AS_OF, "outcome": "sent", "document_ref": "a"}])
    assert len(wh.read_log()) == 2


def test_run_lock_is_exclusive_per_date(wh):
    assert wh.acquire_run_lock(AS_OF, "r1")
    assert not wh.acquire_run_lock(AS_OF, "r2")
    assert wh.acquire_run_lock(AS_OF, "r1")  # the holder's retry
    assert wh.acquire_run_lock(AS_OF - dt.timedelta(days=1), "r2")
    wh.release_run_lock(AS_OF, "r1")
    assert wh.acquire_run_lock(AS_OF, "r2")
    assert wh.acquire_run_lock(AS_OF + dt.timedelta(days=1), "r3", stale_after=dt.timedelta(0))
    assert wh.acquire_run_lock(AS_OF + dt.timedelta(days=1), "r4", stale_after=dt.timedelta(0))


@pytest.mark.postgres
def test_concurrent_claims_on_postgres_hold_each_row_once():
    with postgres_database() as url:
        Warehouse(url).create_schema()
        keys = [f"d{i}" for i in range(200)]
        results: dict[str, list[str]] = {}
        errors: list[BaseException] = []

        def worker(run_id: str) -> None:
            try:
                w = Warehouse(url)
                held = w.claim(claim_rows(keys), run_id=run_id, as_of=AS_OF)
                results[run_id] = list(held["document_ref"])
                w.dispose()
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(f"r{i}",)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        newly = [k for held in results.values() for k in held]
        assert sorted(newly) == sorted(keys), "each row held by exactly one run"
        w = Warehouse(url)
        with w.engine.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM collection_register")).scalar() == 200
        w.dispose()
