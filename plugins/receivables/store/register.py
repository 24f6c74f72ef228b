"""The collection register's exactly-once protocol: claim → side effect → complete.

A register row is the current state of one (document_ref, step_id). A step is *done*
when its row has a non-null ``sent_at``; nothing here ever sets ``sent_at`` except
`complete` with status ``sent``, and nothing here clears it. So an operator who deletes
a row, or sets its ``sent_at`` to NULL, re-arms the step (spec §4).

``pending`` is the outbox state: `claim` writes it, with the side effect's id
(Message-ID, 1C ``Ref_Key``) in ``external_ref``, *before* the side effect; `complete`
records the outcome after it. A row left ``pending`` means an attempt died between the
two; the retry gets the row back with ``was_pending=True`` and the *stored* id, so it
can look the object up (1C) or resend under the same Message-ID.

Concurrency (the same statements on PostgreSQL and SQLite). Every state change is a
single conditional statement on the row, a compare-and-set evaluated by the database
against the latest committed row version:

- new rows: ``INSERT … ON CONFLICT (document_ref, step_id) DO NOTHING RETURNING`` —
  of two concurrent inserts of a key, the second waits for the first to commit and
  then inserts nothing, so exactly one caller gets the key back;
- existing rows: ``UPDATE … WHERE sent_at IS NULL AND status <> 'pending' RETURNING``
  (or, to take over a pending row, ``WHERE status = 'pending' AND (run_id = :me OR
  updated_at < :stale)``, which sets ``run_id = :me, updated_at = now``). On
  PostgreSQL (READ COMMITTED) a concurrent updater blocks on the row lock and then
  re-checks the WHERE on the new version, which no longer matches; on SQLite the
  Warehouse runs these transactions under ``BEGIN IMMEDIATE``, so they are serial.

Keys are processed in sorted order so that concurrent claimers lock rows in the same
order (no deadlock cycles between them); the Warehouse retries a transaction that
PostgreSQL still aborts as a deadlock.

`record_decisions` on PostgreSQL loads its rows by COPY into a temporary table and runs the
same upsert once over all of them (``INSERT … SELECT … ORDER BY key ON CONFLICT … DO UPDATE
… WHERE``): a plan at a million open documents records ~0.4M decisions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any

import pandas as pd
from sqlalchemy import (
    Column,
    MetaData,
    Table,
    and_,
    bindparam,
    case,
    func,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.engine import Connection

from receivables.store import convert
from receivables.store.schema import collection_register

KEY = ("document_ref", "step_id")
CLAIM_COLUMNS = ("document_ref", "document_number", "partner_ref", "step_id", "action", "target",
                 "external_ref")
#: what `record_decisions` may write; ``pending`` and ``sent`` only come from claim/complete
DECISION_STATUSES = ("skipped", "superseded", "planned")
#: what `complete` may write
OUTCOME_STATUSES = ("sent", "failed", "skipped", "superseded", "planned")
_PAGE = 500

t = collection_register


def dialect_insert(conn: Connection) -> Any:
    """``INSERT`` with ``on_conflict_do_*`` for the connection's backend."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - the Warehouse refuses other backends
        raise ValueError(f"unsupported database {conn.dialect.name!r}")
    return insert


def _records(rows: pd.DataFrame, columns: Sequence[str]) -> list[dict[str, Any]]:
    """Plain Python dicts (None for missing) of the given columns; absent columns are None."""
    n = len(rows)
    data = {c: convert.text_values(rows[c]) if c in rows.columns else [None] * n for c in columns}
    return [dict(zip(data, values, strict=True)) for values in zip(*data.values(), strict=True)] if n else []


def _check_keys(rows: pd.DataFrame, what: str) -> list[tuple[str, str]]:
    missing = [c for c in KEY if c not in rows.columns]
    if missing:
        raise ValueError(f"{what}: rows need columns {', '.join(missing)}")
    if rows[list(KEY)].isna().any().any():
        raise ValueError(f"{what}: document_ref and step_id must not be empty")
    keys = list(zip(rows["document_ref"].astype(str), rows["step_id"].astype(str), strict=True))
    if len(set(keys)) != len(keys):
        dup = pd.Series(keys).loc[pd.Series(keys).duplicated()].iloc[0]
        raise ValueError(f"{what}: (document_ref, step_id) {dup} appears more than once")
    return keys


def _pages(items: Sequence[Any], size: int = _PAGE) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _aware(moment: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands timestamps back naive: they are UTC."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment


def _states(conn: Connection, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Any]:
    out: dict[tuple[str, str], Any] = {}
    for page in _pages(sorted(keys)):
        q = select(t.c.document_ref, t.c.step_id, t.c.status, t.c.sent_at, t.c.run_id, t.c.updated_at,
                   t.c.external_ref).where(tuple_(t.c.document_ref, t.c.step_id).in_(list(page)))
        out.update({(r.document_ref, r.step_id): r for r in conn.execute(q)})
    return out


def claim(conn: Connection, rows: pd.DataFrame, *, run_id: str, as_of: dt.date, now: dt.datetime,
          stale_after: dt.timedelta, infobase: str = "default") -> pd.DataFrame:
    """Make rows ``pending`` before their side effect; return the rows this call holds.

    Per (document_ref, step_id), against the row as it is at that moment:

    - no row → inserted ``pending`` (``sent_at`` NULL, ``attempts`` 1) with the given
      ``external_ref``; returned, ``was_pending=False``;
    - ``sent_at`` set → done: never claimed, not returned;
    - ``sent_at`` NULL, status not ``pending`` (failed, skipped, planned, superseded, or
      ``sent`` re-armed by nulling ``sent_at``) → set ``pending`` with this call's
      run_id, target, number, partner and action; ``external_ref`` keeps the stored
      one when there is one (a failed attempt's id, so that a send that did happen
      is recognised) — except a re-armed ``sent`` row, which takes the new id because
      the operator asked for a new send; ``attempts`` + 1; ``was_pending=False``;
    - ``pending`` (an attempt died between its side effect and `complete`) → taken over
      only by the same run_id (Airflow's retry of the crashed task) or once the row
      is older than `stale_after` (its run is gone); it stays ``pending`` with its
      stored ``external_ref``, run_id becomes this run's, ``attempts`` + 1, returned
      with ``was_pending=True``: the caller must check whether the side effect
      already happened. A pending row of another, live run is not returned.

    The result has the input rows that were claimed (input order, fresh index) with
    ``external_ref`` replaced by the stored one, plus the bool column ``was_pending``.
    """
    out_columns = [*rows.columns, *(["external_ref"] if "external_ref" not in rows.columns else [])]
    if rows.empty:
        empty = rows.reindex(columns=out_columns).reset_index(drop=True)
        return empty.assign(was_pending=pd.Series(dtype=bool))
    keys = _check_keys(rows, "claim")
    recs = _records(rows, CLAIM_COLUMNS)
    infobases = convert.text_values(rows["infobase"]) if "infobase" in rows.columns else [None] * len(rows)
    order = sorted(range(len(keys)), key=keys.__getitem__)
    held: dict[tuple[str, str], tuple[Any, bool]] = {}

    insert = dialect_insert(conn)
    new_row = (insert(t).on_conflict_do_nothing(index_elements=list(KEY))
               .returning(t.c.document_ref, t.c.step_id, t.c.external_ref))

    def fresh(i: int) -> dict[str, Any]:
        return {**recs[i], "document_ref": keys[i][0], "step_id": keys[i][1], "status": "pending",
                "sent_at": None, "detail": None, "run_id": run_id, "as_of_date": as_of, "updated_at": now,
                "attempts": 1, "infobase": infobases[i] or infobase}

    for page in _pages(order):
        for r in conn.execute(new_row, [fresh(i) for i in page]):
            held[(r.document_ref, r.step_id)] = (r.external_ref, False)

    rest = [i for i in order if keys[i] not in held]
    states = _states(conn, [keys[i] for i in rest]) if rest else {}
    cutoff = now - stale_after
    for i in rest:
        key, rec, old = keys[i], recs[i], states.get(keys[i])
        where = and_(t.c.document_ref == key[0], t.c.step_id == key[1], t.c.sent_at.is_(None))
        refresh = {"run_id": run_id, "as_of_date": as_of, "updated_at": now, "attempts": t.c.attempts + 1,
                   "target": rec["target"], "document_number": rec["document_number"],
                   "partner_ref": rec["partner_ref"], "action": rec["action"]}
        if old is None:  # deleted since our INSERT saw it: try once more
            got = conn.execute(new_row, [fresh(i)]).first()
            if got is not None:
                held[key] = (got.external_ref, False)
            continue
        if old.sent_at is not None:
            continue
        if old.status != "pending":
            stored_ref = case((t.c.status == "sent", rec["external_ref"]),
                              else_=func.coalesce(t.c.external_ref, rec["external_ref"]))
            stmt = (update(t).where(where, t.c.status != "pending")
                    .values(status="pending", external_ref=stored_ref, detail=None, **refresh)
                    .returning(t.c.external_ref))
            was_pending = False
        else:
            touched = _aware(old.updated_at)
            if not (old.run_id == run_id or old.run_id is None or touched is None or touched < cutoff):
                continue  # another run is on it right now
            stmt = (update(t).where(where, t.c.status == "pending",
                                    or_(t.c.run_id == run_id, t.c.run_id.is_(None), t.c.updated_at.is_(None),
                                        t.c.updated_at < cutoff))
                    .values(**refresh).returning(t.c.external_ref))
            was_pending = True
        got = conn.execute(stmt).first()
        if got is not None:
            held[key] = (got.external_ref, was_pending)

    mask = [k in held for k in keys]
    out = rows.loc[mask].reindex(columns=out_columns).reset_index(drop=True)
    mine = [held[k] for k, m in zip(keys, mask, strict=True) if m]
    out["external_ref"] = pd.Series([ref for ref, _ in mine], dtype=object)
    out["was_pending"] = pd.Series([p for _, p in mine], dtype=bool)
    return out


def complete(conn: Connection, rows: pd.DataFrame, *, now: dt.datetime, run_id: str | None = None) -> None:
    """Record outcomes after the side effects: status, sent_at, external_ref, detail.

    ``sent`` rows get ``sent_at`` (now, when the frame has none); other statuses keep
    what the frame says (normally NaT → NULL, so the step stays eligible). A missing
    ``external_ref`` keeps the stored one. With `run_id`, only rows held by that run
    are touched (a row another run has since taken over is left to it).
    """
    if rows.empty:
        return
    keys = _check_keys(rows, "complete")
    if "status" not in rows.columns:
        raise ValueError("complete: rows need a status column")
    statuses = convert.text_values(rows["status"])
    wrong = sorted({s for s in statuses if s not in OUTCOME_STATUSES}, key=str)
    if wrong:
        raise ValueError(f"complete: status must be one of {', '.join(OUTCOME_STATUSES)}, got {wrong}")
    n = len(rows)
    sent_at = [convert.utc(v) for v in rows["sent_at"]] if "sent_at" in rows.columns else [None] * n
    refs = convert.text_values(rows["external_ref"]) if "external_ref" in rows.columns else [None] * n
    details = convert.text_values(rows["detail"]) if "detail" in rows.columns else [None] * n
    params = [
        {"k_doc": k[0], "k_step": k[1], "v_status": s, "v_sent_at": (when or now) if s == "sent" else when,
         "v_ref": ref, "v_detail": detail, "v_now": now, "k_run": run_id}
        for k, s, when, ref, detail in zip(keys, statuses, sent_at, refs, details, strict=True)
    ]
    params.sort(key=lambda p: (p["k_doc"], p["k_step"]))
    where = [t.c.document_ref == bindparam("k_doc"), t.c.step_id == bindparam("k_step")]
    if run_id is not None:
        where.append(t.c.run_id == bindparam("k_run"))
    stmt = update(t).where(*where).values(
        status=bindparam("v_status"), sent_at=bindparam("v_sent_at", type_=t.c.sent_at.type),
        external_ref=func.coalesce(bindparam("v_ref", type_=t.c.external_ref.type), t.c.external_ref),
        detail=bindparam("v_detail"), updated_at=bindparam("v_now", type_=t.c.updated_at.type))
    for page in _pages(params, 1000):
        conn.execute(stmt, list(page))


def record_decisions(conn: Connection, rows: pd.DataFrame, *, run_id: str, as_of: dt.date,
                     now: dt.datetime, infobase: str = "default") -> int:
    """Register non-acting decisions (skipped, superseded, planned; ``detail`` = reason code).

    Upsert per (document_ref, step_id): a new row is inserted (``sent_at`` NULL,
    ``attempts`` 0); an existing row is overwritten only when ``sent_at`` is NULL and
    its status is not ``pending`` — a done step or an attempt in flight is never
    touched. ``external_ref`` and ``attempts`` of an existing row are kept (a later
    claim reuses that id). Returns the number of rows inserted or updated.
    """
    if rows.empty:
        return 0
    keys = _check_keys(rows, "record_decisions")
    if "status" not in rows.columns:
        raise ValueError("record_decisions: rows need a status column")
    frame = rows if "detail" in rows.columns or "reason" not in rows.columns else rows.assign(detail=rows["reason"])
    wrong = sorted(set(convert.text_values(frame["status"])) - set(DECISION_STATUSES), key=str)
    if wrong:
        raise ValueError(f"record_decisions: status must be one of {', '.join(DECISION_STATUSES)}, got {wrong}"
                         " (sent and pending are written by claim/complete)")
    insert = dialect_insert(conn)
    if conn.dialect.name == "postgresql":
        staged = _stage_decisions(conn, frame, run_id=run_id, as_of=as_of, now=now, infobase=infobase)
        # the keys in Python's order (code points: UTF-8 bytes, COLLATE "C"), as the pages below
        stmt = insert(t).from_select([c.name for c in staged.c], select(*staged.c).order_by(
            staged.c.document_ref.collate("C"), staged.c.step_id.collate("C")))
        # the statement's row count is the keys inserted or updated (a row the WHERE keeps is not
        # counted): fetching a RETURNING row per key held ~0.1 GB at a million open documents
        return conn.execute(_upsert_decisions(stmt, returning=False)).rowcount
    recs = _records(frame, (*CLAIM_COLUMNS, "status", "detail", "infobase"))
    payload = sorted(
        ({**r, "document_ref": k[0], "step_id": k[1], "sent_at": None, "run_id": run_id, "as_of_date": as_of,
          "updated_at": now, "attempts": 0, "infobase": r["infobase"] or infobase}
         for k, r in zip(keys, recs, strict=True)),
        key=lambda r: (r["document_ref"], r["step_id"]))
    stmt = _upsert_decisions(insert(t))
    written = 0
    for page in _pages(payload, 1000):
        written += len(conn.execute(stmt, list(page)).all())
    return written


def _upsert_decisions(stmt: Any, *, returning: bool = True) -> Any:
    """`record_decisions`' upsert: a new key inserted, an existing row overwritten only while it
    is neither done (sent_at) nor pending; with `returning`, the keys written returned (SQLite's
    executemany counts no rows)."""
    upsert = stmt.on_conflict_do_update(
        index_elements=list(KEY),
        set_={c: stmt.excluded[c] for c in ("document_number", "partner_ref", "action", "target", "status",
                                             "detail", "run_id", "as_of_date", "updated_at")},
        where=and_(t.c.sent_at.is_(None), t.c.status != "pending"),
    )
    return upsert.returning(t.c.document_ref) if returning else upsert


def _stage_decisions(conn: Connection, frame: pd.DataFrame, *, run_id: str, as_of: dt.date, now: dt.datetime,
                     infobase: str) -> Table:
    """PostgreSQL: `record_decisions`' rows in a temporary table (dropped at commit), loaded by
    COPY — one statement then upserts them all, where a million decisions as parameters took
    half a minute. The values are those of the parameter rows: text as str, the row's
    infobase or the default, sent_at NULL, attempts 0."""
    n = len(frame)
    staged = Table("_decisions_in", MetaData(), *(Column(c.name, c.type) for c in t.columns if c.name != "sent_at"),
                   prefixes=["TEMPORARY"], postgresql_on_commit="DROP")
    # an earlier call in this transaction left it (pg_temp: never a permanent table of that name)
    conn.execute(text("DROP TABLE IF EXISTS pg_temp._decisions_in"))
    staged.create(conn)
    given = frame["infobase"].astype("str") if "infobase" in frame.columns else pd.Series([None] * n, dtype="str")
    columns = {c: convert.copy_text_column(frame[c] if c in frame.columns else pd.Series([None] * n, dtype="str"))
               for c in (*CLAIM_COLUMNS, "status", "detail")}
    columns.update({
        "infobase": convert.copy_text_column(given.mask(given.eq("") | given.isna(), infobase)),
        "run_id": convert.copy_constant(run_id, n),
        "as_of_date": convert.copy_constant(as_of.isoformat(), n),
        "updated_at": convert.copy_moment_column(pd.Series([now])).take([0] * n),
        "attempts": convert.copy_constant("0", n),
    })
    convert.copy_rows(conn, staged.name, columns)
    return staged
