"""The warehouse: aging snapshots, the collection register and log, run summaries.

Same SQLAlchemy Core code on SQLite (embedded default) and PostgreSQL (production).
Money is stored as NUMERIC rubles and travels in Python as integer kopecks.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    and_,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import Engine

from receivables.store.schema import (
    aging_snapshot,
    collection_log,
    collection_plan,
    collection_register,
    metadata,
    run_lock,
    run_summary,
)

MONEY_COLUMNS = ("amount", "paid", "outstanding", "partner_debt", "contract_debt")
DATE_COLUMNS = ("as_of_date", "document_date", "due_date")
VIEWS_DIR = Path(__file__).resolve().parents[3] / "sql" / "views"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _rubles(kopecks: Any) -> Decimal | None:
    if kopecks is None or (isinstance(kopecks, float) and np.isnan(kopecks)) or kopecks is pd.NA:
        return None
    return Decimal(int(kopecks)).scaleb(-2)


def _kopecks(series: pd.Series) -> pd.Series:
    """NUMERIC rubles (Decimal, float on SQLite, text) back to exact integer kopecks."""
    values = pd.to_numeric(series.map(lambda v: None if v is None else str(v)), errors="coerce")
    return pd.Series(np.rint(values.to_numpy(dtype="float64") * 100), index=series.index).astype("Int64")


def _py(v: Any) -> Any:
    """A pandas/numpy scalar as a plain Python value for the DB driver."""
    if v is None or v is pd.NaT or v is pd.NA:
        return None
    if isinstance(v, float) and np.isnan(v):
        return None
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, pd.Timestamp):
        return v.to_pydatetime()
    return v


class Warehouse:
    """One warehouse database, by SQLAlchemy URL (from connection ``receivables_db``)."""

    def __init__(self, url: str):
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"future": True}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": 60}
        else:
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)

    def dispose(self) -> None:
        self.engine.dispose()

    # -- schema ----------------------------------------------------------------------

    def create_schema(self) -> None:
        """Create missing tables and (re)create the views of sql/views; safe every run, and
        when two runs start together (the loser of the race finds the tables made)."""
        _retry(lambda: metadata.create_all(self.engine, checkfirst=True))
        if VIEWS_DIR.is_dir():
            _retry(self._create_views)

    def _create_views(self) -> None:
        with self.engine.begin() as conn:
            for path in sorted(VIEWS_DIR.glob("*.sql")):
                body = "\n".join(line for line in path.read_text(encoding="utf-8").splitlines()
                                 if not line.lstrip().startswith("--"))
                conn.execute(text(f"DROP VIEW IF EXISTS {path.stem}"))
                conn.execute(text(f"CREATE VIEW {path.stem} AS {body}"))

    def load_key_rates(self, csv_path: Path) -> int:
        """The Bank of Russia key rates for SQL users (table key_rate), replaced from the CSV."""
        import csv

        from receivables.store.schema import key_rate

        with open(csv_path, encoding="utf-8") as fh:
            rows = [{"date_from": dt.date.fromisoformat(r["date_from"]), "rate_percent": Decimal(r["rate_percent"]),
                     "verified": r.get("verified", "").strip().lower() == "yes"} for r in csv.DictReader(fh)]
        with self.engine.begin() as conn:
            conn.execute(delete(key_rate))
            conn.execute(insert(key_rate), rows)
        return len(rows)

    def tables(self) -> list[str]:
        return sorted(inspect(self.engine).get_table_names())

    # -- aging snapshot --------------------------------------------------------------

    def replace_snapshot(self, as_of: dt.date, aging: pd.DataFrame, *, infobase: str = "default") -> int:
        """Replace that date's rows with `aging`, in one transaction (reruns replace)."""
        cols = [c.name for c in aging_snapshot.columns if c.name in aging.columns or c.name == "infobase"]
        frame = aging.copy()
        frame["infobase"] = infobase
        for c in MONEY_COLUMNS:
            if c in frame:
                frame[c] = [_rubles(v) for v in frame[c].to_numpy(dtype=object)]
        for c in DATE_COLUMNS:
            if c in frame:
                frame[c] = [None if pd.isna(v) else pd.Timestamp(v).date() for v in frame[c]]
        rows = [dict(zip(cols, map(_py, rec), strict=True)) for rec in frame[cols].itertuples(index=False)]
        with self.engine.begin() as conn:
            conn.execute(delete(aging_snapshot).where(and_(aging_snapshot.c.as_of_date == as_of,
                                                           aging_snapshot.c.infobase == infobase)))
            for start in range(0, len(rows), 20000):
                conn.execute(insert(aging_snapshot), rows[start:start + 20000])
        return len(rows)

    def read_snapshot(self, as_of: dt.date, *, infobase: str | None = None) -> pd.DataFrame:
        q = select(aging_snapshot).where(aging_snapshot.c.as_of_date == as_of)
        if infobase:
            q = q.where(aging_snapshot.c.infobase == infobase)
        with self.engine.connect() as conn:
            df = pd.DataFrame(conn.execute(q).mappings().all(), columns=[c.name for c in aging_snapshot.columns])
        for c in MONEY_COLUMNS:
            df[c] = _kopecks(df[c])
        for c in DATE_COLUMNS:
            df[c] = pd.to_datetime(df[c]).astype("datetime64[s]")
        return df

    def replace_plan(self, as_of: dt.date, run_id: str, plan: pd.DataFrame) -> int:
        """The date's latest plan (every decision but `excluded`), for SQL users' preview."""
        rows = plan.loc[plan["decision"].ne("excluded")]
        cols = [c.name for c in collection_plan.columns if c.name not in ("as_of_date", "run_id")]
        payload = []
        for rec in rows[cols].itertuples(index=False):
            d = dict(zip(cols, map(_py, rec), strict=True))
            d["outstanding"] = _rubles(d["outstanding"])
            d["due_day"] = d["due_day"].date() if isinstance(d["due_day"], dt.datetime) else d["due_day"]
            payload.append({**d, "as_of_date": as_of, "run_id": run_id})
        with self.engine.begin() as conn:
            conn.execute(delete(collection_plan).where(collection_plan.c.as_of_date == as_of))
            for start in range(0, len(payload), 20000):
                conn.execute(insert(collection_plan), payload[start:start + 20000])
        return len(payload)

    # -- register ----------------------------------------------------------------------

    def snapshot_totals(self) -> pd.DataFrame:
        """Outstanding and documents per (as_of_date, bucket) over every stored date."""
        q = (select(aging_snapshot.c.as_of_date, aging_snapshot.c.bucket,
                    func.count().label("documents"), func.sum(aging_snapshot.c.outstanding).label("outstanding"))
             .group_by(aging_snapshot.c.as_of_date, aging_snapshot.c.bucket))
        with self.engine.connect() as conn:
            df = pd.DataFrame(conn.execute(q).all(), columns=["as_of_date", "bucket", "documents", "outstanding"])
        df["outstanding"] = _kopecks(df["outstanding"])
        df["as_of_date"] = pd.to_datetime(df["as_of_date"]).astype("datetime64[s]")
        return df

    def snapshot_members(self, dates: Iterable[dt.date]) -> pd.DataFrame:
        """(as_of_date, document_ref) of the open documents on the given dates."""
        q = select(aging_snapshot.c.as_of_date, aging_snapshot.c.document_ref).where(
            aging_snapshot.c.as_of_date.in_(list(dates)))
        with self.engine.connect() as conn:
            df = pd.DataFrame(conn.execute(q).all(), columns=["as_of_date", "document_ref"])
        df["as_of_date"] = pd.to_datetime(df["as_of_date"]).astype("datetime64[s]")
        return df

    def read_register(self, document_refs: Iterable[str] | None = None) -> pd.DataFrame:
        q = select(collection_register)
        if document_refs is not None:
            q = q.where(collection_register.c.document_ref.in_(list(document_refs)))
        with self.engine.connect() as conn:
            df = pd.DataFrame(conn.execute(q).mappings().all(),
                              columns=[c.name for c in collection_register.columns])
        for c in ("sent_at", "updated_at"):
            df[c] = pd.to_datetime(df[c], utc=True)
        return df

    def claim(self, rows: pd.DataFrame, *, run_id: str, as_of: dt.date,
              stale_after: dt.timedelta = dt.timedelta(minutes=30)) -> pd.DataFrame:
        """Make rows ``pending`` before their side effect; return the rows this run holds.

        New (document, step) rows are inserted; rows with no ``sent_at`` are switched to
        pending; rows another attempt left pending (it crashed mid-way) are taken over
        with their stored ``external_ref``, flagged ``was_pending``. Every update is a
        compare-and-set on the row's previous state, so two concurrent runs never both
        hold a row; rows with ``sent_at`` are never claimed. A row pending under another
        run is taken over only when that run is silent for `stale_after` (it crashed);
        the same run's retry takes it over at once.
        """
        if rows.empty:
            return rows.assign(was_pending=pd.Series(dtype=bool))
        now = _now()
        keys = list(zip(rows["document_ref"], rows["step_id"], strict=True))
        recs = [{k: _py(v) for k, v in r.items()} for r in rows.to_dict("records")]
        with self.engine.begin() as conn:
            before = {(r.document_ref, r.step_id): r for r in conn.execute(
                select(collection_register.c.document_ref, collection_register.c.step_id,
                       collection_register.c.status, collection_register.c.sent_at,
                       collection_register.c.run_id, collection_register.c.updated_at)
                .where(collection_register.c.document_ref.in_({k[0] for k in keys})))}
            stmt = _insert(self.engine)(collection_register).on_conflict_do_nothing(
                index_elements=["document_ref", "step_id"])
            new = [dict(r, status="pending", run_id=run_id, as_of_date=as_of, updated_at=now, attempts=1,
                        sent_at=None, detail=None, infobase=r.get("infobase") or "default")
                   for r in recs if (r["document_ref"], r["step_id"]) not in before]
            if new:
                conn.execute(stmt, [{c: r.get(c) for c in _REGISTER_INSERT} for r in new])
            for r in recs:
                old = before.get((r["document_ref"], r["step_id"]))
                if old is None or old.sent_at is not None:
                    continue
                if old.status == "pending" and old.run_id != run_id:
                    touched = old.updated_at
                    if touched is not None and touched.tzinfo is None:
                        touched = touched.replace(tzinfo=dt.UTC)
                    if touched is not None and now - touched < stale_after:
                        continue  # another run is on it right now
                t = collection_register
                where = and_(t.c.document_ref == r["document_ref"], t.c.step_id == r["step_id"],
                             t.c.sent_at.is_(None), t.c.status == old.status,
                             (t.c.run_id == old.run_id) if old.run_id is not None else t.c.run_id.is_(None))
                values = {"status": "pending", "run_id": run_id, "as_of_date": as_of, "updated_at": now,
                          "attempts": t.c.attempts + 1, "target": r.get("target"),
                          "document_number": r.get("document_number"), "partner_ref": r.get("partner_ref"),
                          "action": r.get("action")}
                if old.status != "pending":
                    # a fresh attempt: a new id unless an earlier attempt fixed one
                    values["external_ref"] = _coalesce_ref(t, r.get("external_ref"))
                conn.execute(update(t).where(where).values(**values))
            held = conn.execute(
                select(collection_register.c.document_ref, collection_register.c.step_id,
                       collection_register.c.external_ref)
                .where(collection_register.c.run_id == run_id, collection_register.c.status == "pending",
                       collection_register.c.sent_at.is_(None))).all()
        held_map = {(h.document_ref, h.step_id): h.external_ref for h in held}
        out = rows.loc[[k in held_map for k in keys]].copy()
        out["external_ref"] = [held_map[k] for k in zip(out["document_ref"], out["step_id"], strict=True)]
        out["was_pending"] = [getattr(before.get(k), "status", None) == "pending"
                              for k in zip(out["document_ref"], out["step_id"], strict=True)]
        return out.reset_index(drop=True)

    def complete(self, rows: pd.DataFrame) -> None:
        """Record outcomes: status, sent_at (for sent), external_ref, detail."""
        now = _now()
        t = collection_register
        with self.engine.begin() as conn:
            for r in rows.to_dict("records"):
                sent_at = _py(r.get("sent_at"))
                conn.execute(update(t).where(and_(t.c.document_ref == r["document_ref"], t.c.step_id == r["step_id"]))
                             .values(status=r["status"], sent_at=sent_at, external_ref=_py(r.get("external_ref")),
                                     detail=_py(r.get("detail")), updated_at=now))

    def record_decisions(self, rows: pd.DataFrame, *, run_id: str, as_of: dt.date) -> int:
        """Upsert non-acting decisions (skipped, superseded, planned); never touch a sent
        or pending row."""
        if rows.empty:
            return 0
        now = _now()
        t = collection_register
        recs = [{k: _py(v) for k, v in r.items()} for r in rows.to_dict("records")]
        payload = [{c: r.get(c) for c in _REGISTER_INSERT} | {"run_id": run_id, "as_of_date": as_of,
                                                              "updated_at": now, "attempts": 0,
                                                              "sent_at": None, "infobase": "default"}
                   for r in recs]
        stmt = _insert(self.engine)(t)
        stmt = stmt.on_conflict_do_update(
            index_elements=["document_ref", "step_id"],
            set_={"status": stmt.excluded.status, "detail": stmt.excluded.detail, "target": stmt.excluded.target,
                  "run_id": stmt.excluded.run_id, "as_of_date": stmt.excluded.as_of_date,
                  "updated_at": stmt.excluded.updated_at},
            where=and_(t.c.sent_at.is_(None), t.c.status != "pending"),
        )
        with self.engine.begin() as conn:
            conn.execute(stmt, payload)
        return len(payload)

    # -- log ---------------------------------------------------------------------------

    def append_log(self, rows: pd.DataFrame | list[dict]) -> int:
        recs = rows.to_dict("records") if isinstance(rows, pd.DataFrame) else list(rows)
        if not recs:
            return 0
        now = _now()
        cols = [c.name for c in collection_log.columns if c.name != "id"]
        payload = [{c: _py(r.get(c)) for c in cols} for r in recs]
        for p in payload:
            p["logged_at"] = p["logged_at"] or now
            if isinstance(p.get("as_of_date"), dt.datetime):
                p["as_of_date"] = p["as_of_date"].date()
        with self.engine.begin() as conn:
            conn.execute(insert(collection_log), payload)
        return len(payload)

    def read_log(self) -> pd.DataFrame:
        with self.engine.connect() as conn:
            return pd.DataFrame(conn.execute(select(collection_log).order_by(collection_log.c.id)).mappings().all(),
                                columns=[c.name for c in collection_log.columns])

    # -- runs --------------------------------------------------------------------------

    def acquire_run_lock(self, as_of: dt.date, run_id: str, *, infobase: str = "default",
                         stale_after: dt.timedelta = dt.timedelta(minutes=30)) -> bool:
        """Only one run acts per (infobase, as-of date); a lock older than `stale_after` is taken over."""
        now = _now()
        t = run_lock
        with self.engine.begin() as conn:
            conn.execute(_insert(self.engine)(t).on_conflict_do_nothing(index_elements=["infobase", "as_of_date"]),
                         {"infobase": infobase, "as_of_date": as_of, "run_id": run_id, "acquired_at": now})
            conn.execute(update(t).where(and_(t.c.infobase == infobase, t.c.as_of_date == as_of,
                                              t.c.run_id != run_id, t.c.acquired_at < now - stale_after))
                         .values(run_id=run_id, acquired_at=now))
            holder = conn.execute(select(t.c.run_id).where(and_(t.c.infobase == infobase,
                                                                 t.c.as_of_date == as_of))).scalar_one()
        return holder == run_id

    def lock_holder(self, as_of: dt.date, *, infobase: str = "default") -> tuple[str, dt.datetime] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(run_lock.c.run_id, run_lock.c.acquired_at).where(
                and_(run_lock.c.infobase == infobase, run_lock.c.as_of_date == as_of))).first()
        return (row.run_id, row.acquired_at) if row else None

    def release_run_lock(self, as_of: dt.date, run_id: str, *, infobase: str = "default") -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(run_lock).where(and_(run_lock.c.infobase == infobase, run_lock.c.as_of_date == as_of,
                                                     run_lock.c.run_id == run_id)))

    def save_run_summary(self, *, run_id: str, as_of_date: dt.date, mode: str, acting: bool,
                         counts: dict[str, int], documents_read: int, open_documents: int,
                         outstanding: int, started_at: dt.datetime | None = None,
                         sales_30d: int | None = None, sales_90d: int | None = None) -> None:
        now = _now()
        values = {"run_id": run_id, "as_of_date": as_of_date, "mode": mode, "acting": acting,
                  "started_at": started_at or now, "finished_at": now, "counts": json.dumps(counts),
                  "documents_read": documents_read, "open_documents": open_documents,
                  "outstanding": _rubles(outstanding), "sales_30d": _rubles(sales_30d),
                  "sales_90d": _rubles(sales_90d)}
        stmt = _insert(self.engine)(run_summary)
        stmt = stmt.on_conflict_do_update(index_elements=["run_id"],
                                          set_={k: stmt.excluded[k] for k in values if k != "run_id"})
        with self.engine.begin() as conn:
            conn.execute(stmt, values)

    def read_run_summaries(self) -> pd.DataFrame:
        with self.engine.connect() as conn:
            return pd.DataFrame(conn.execute(select(run_summary)).mappings().all(),
                                columns=[c.name for c in run_summary.columns])


_REGISTER_INSERT = ["document_ref", "document_number", "partner_ref", "step_id", "action", "target", "status",
                    "sent_at", "external_ref", "detail", "run_id", "as_of_date", "updated_at", "attempts",
                    "infobase"]


def _coalesce_ref(t, new_ref):
    from sqlalchemy import func, literal

    return func.coalesce(t.c.external_ref, literal(new_ref))


def _retry(step, attempts: int = 3) -> None:
    """DDL raced by a concurrent run fails once with "already exists": wait and redo."""
    import time

    from sqlalchemy.exc import OperationalError, ProgrammingError

    for attempt in range(attempts):
        try:
            step()
            return
        except (OperationalError, ProgrammingError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))


def _insert(engine: Engine):
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=60000")
    cur.close()
