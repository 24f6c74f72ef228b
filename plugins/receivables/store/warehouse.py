"""The warehouse: aging snapshots, the collection register and log, runs and their lock.

The same SQLAlchemy Core code on SQLite (the embedded default) and PostgreSQL
(production); the URL comes from the Airflow connection ``receivables_db``. Money
travels in Python as int64 kopecks and is stored as NUMERIC rubles (see `convert`);
calendar dates are DATE; moments are aware UTC datetimes.

Writes that must not interleave run in `Warehouse._write`: ``BEGIN IMMEDIATE`` on
SQLite (the transaction holds the database's write lock from its first statement),
plus a transaction-scoped advisory lock on PostgreSQL where a delete-then-insert must
not race another one for the same key (a snapshot date, the schema, the key rates).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    Integer,
    and_,
    cast,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError

from receivables.store import convert, register
from receivables.store.schema import (
    MONEY_COLUMNS,
    aging_snapshot,
    collection_log,
    collection_plan,
    collection_register,
    key_rate,
    metadata,
    run_lock,
    run_summary,
)

log = logging.getLogger(__name__)

VIEWS_DIR = Path(__file__).resolve().parents[3] / "sql" / "views"
SQLITE_BUSY_MS = 60_000
#: rows per executemany / COPY batch when loading a snapshot
CHUNK_ROWS = 100_000
#: PostgreSQL errors worth retrying the whole transaction for: deadlock, serialization
_RETRY_PGCODES = {"40P01", "40001"}
_EPOCH = dt.date(1970, 1, 1)
_LOG_GUARD = "collection_log_append_only"
_PG_LOG_GUARD_FN = """
CREATE OR REPLACE FUNCTION receivables_collection_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'collection_log is append-only (% refused)', TG_OP;
END
$$"""
_PG_LOG_GUARD = (f"CREATE TRIGGER {_LOG_GUARD} BEFORE UPDATE OR DELETE OR TRUNCATE ON collection_log "
                 "FOR EACH STATEMENT EXECUTE FUNCTION receivables_collection_log_append_only()")
_SQLITE_LOG_GUARDS = {
    f"{_LOG_GUARD}_{op.lower()}": f"CREATE TRIGGER IF NOT EXISTS {_LOG_GUARD}_{op.lower()} BEFORE {op} ON "
                                  f"collection_log BEGIN SELECT RAISE(ABORT, 'collection_log is append-only "
                                  f"({op} refused)'); END"
    for op in ("UPDATE", "DELETE")
}

T = TypeVar("T")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    """A busy timeout and WAL (readers never block the writer) for every new connection.

    Switching a file to WAL needs it to itself, and SQLite can refuse that switch as
    "database is locked" without waiting (CI saw it once when two runs started together on a
    fresh warehouse; the exact interleaving was not reproduced): it is retried until the
    timeout.
    """
    import sqlite3

    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
    deadline = time.monotonic() + SQLITE_BUSY_MS / 1000
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    cur.close()


def _lock_key(*parts: Any) -> int:
    """A stable signed 64-bit advisory-lock key for the given parts."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _view_sql(path: Path) -> str:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if not line.lstrip().startswith("--")]
    return "\n".join(lines).strip().rstrip(";")


class Warehouse:
    """One warehouse database, by SQLAlchemy URL (``sqlite:///path`` or ``postgresql+psycopg2://…``)."""

    def __init__(self, url: str | URL):
        parsed = make_url(url)
        self.url = parsed.render_as_string(hide_password=False)
        self.backend = parsed.get_backend_name()
        self.is_sqlite = self.backend == "sqlite"
        self.is_postgres = self.backend == "postgresql"
        if self.is_sqlite:
            db = parsed.database or ""
            if db and db != ":memory:" and not db.startswith("file:"):
                Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_MS / 1000})
            event.listen(self.engine, "connect", _sqlite_on_connect)
        elif self.is_postgres:
            self.engine = create_engine(parsed, pool_pre_ping=True)
        else:
            raise ValueError(f"the warehouse runs on SQLite or PostgreSQL, not {self.backend!r} ({parsed!r})")

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.dispose()

    def dispose(self) -> None:
        """Close the pooled connections."""
        self.engine.dispose()

    # -- transactions ----------------------------------------------------------------

    @contextmanager
    def _write(self, *lock: Any) -> Iterator[Connection]:
        """A write transaction; `lock` parts name a PostgreSQL advisory lock held until commit."""
        with self.engine.begin() as conn:
            if self.is_sqlite:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            elif lock:
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key(*lock)})
            yield conn

    def _retrying(self, work: Callable[[Connection], T], *lock: Any, attempts: int = 5) -> T:
        """Run `work` in a write transaction, again if PostgreSQL aborts it as a deadlock."""
        for attempt in range(1, attempts + 1):
            try:
                with self._write(*lock) as conn:
                    return work(conn)
            except DBAPIError as exc:
                code = getattr(exc.orig, "pgcode", None)
                if code not in _RETRY_PGCODES or attempt == attempts:
                    raise
                log.info("warehouse transaction aborted (%s), retrying (%d/%d)", code, attempt, attempts)
                time.sleep(0.05 * attempt)
        raise AssertionError("unreachable")

    # -- schema ----------------------------------------------------------------------

    def create_schema(self) -> None:
        """Create what is missing: tables, indexes, new nullable columns, the log's
        append-only guard and the views of ``sql/views``. Idempotent and cheap when
        nothing is missing, safe to call at the start of every task, also concurrently."""
        with self.engine.connect() as conn:
            if not self._schema_todo(conn):
                return
        with self._write("receivables.schema") as conn:
            todo = self._schema_todo(conn)  # again, now that we hold the lock
            if "tables" in todo:
                metadata.create_all(conn, checkfirst=True)
                self._add_missing_columns(conn)
            if "log_guard" in todo:
                self._create_log_guard(conn)
            if "views" in todo:
                self._create_views(conn)

    def pending_migrations(self) -> set[str]:
        """What `create_schema` would do now: a subset of {tables, log_guard, views}."""
        with self.engine.connect() as conn:
            return self._schema_todo(conn)

    def _schema_todo(self, conn: Connection) -> set[str]:
        insp = inspect(conn)
        todo: set[str] = set()
        existing = set(insp.get_table_names())
        for table in metadata.sorted_tables:
            if table.name not in existing:
                todo.add("tables")
                break
            have = {c["name"] for c in insp.get_columns(table.name)}
            if set(table.columns.keys()) - have:
                todo.add("tables")
                break
            if {i.name for i in table.indexes} - {i["name"] for i in insp.get_indexes(table.name)}:
                todo.add("tables")
                break
        if "collection_log" not in existing or not self._has_log_guard(conn):
            todo.add("log_guard")
        views = self._view_definitions()
        if views and (set(views) - set(insp.get_view_names()) or self._stale_views(conn, views)):
            todo.add("views")
        return todo

    def _add_missing_columns(self, conn: Connection) -> None:
        """ALTER TABLE … ADD COLUMN for columns added to the code after the table was made."""
        insp = inspect(conn)
        quote = conn.dialect.identifier_preparer.quote
        for table in metadata.sorted_tables:
            have = {c["name"] for c in insp.get_columns(table.name)}
            for col in table.columns:
                if col.name in have:
                    continue
                ddl = f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(col.name)} {col.type.compile(conn.dialect)}"
                if col.server_default is not None:
                    ddl += f" DEFAULT {col.server_default.arg.text}"  # type: ignore[union-attr]
                    if not col.nullable:
                        ddl += " NOT NULL"
                elif not col.nullable:
                    log.warning("column %s.%s is missing and NOT NULL without default: not added",
                                table.name, col.name)
                    continue
                conn.exec_driver_sql(ddl)
                log.info("warehouse: added column %s.%s", table.name, col.name)

    def _has_log_guard(self, conn: Connection) -> bool:
        if self.is_sqlite:
            names = set(conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger' AND "
                                          "tbl_name = 'collection_log'")).scalars())
            return set(_SQLITE_LOG_GUARDS) <= names
        return bool(conn.execute(text(
            "SELECT 1 FROM pg_trigger WHERE tgname = :n AND tgrelid = to_regclass('collection_log')"),
            {"n": _LOG_GUARD}).first())

    def _create_log_guard(self, conn: Connection) -> None:
        """collection_log is the audit trail: UPDATE and DELETE (and TRUNCATE) are refused."""
        if self.is_sqlite:
            for ddl in _SQLITE_LOG_GUARDS.values():
                conn.exec_driver_sql(ddl)
        elif not self._has_log_guard(conn):
            conn.execute(text(_PG_LOG_GUARD_FN))  # text(): escapes the % for psycopg2
            conn.execute(text(_PG_LOG_GUARD))

    @staticmethod
    def _view_definitions() -> dict[str, str]:
        if not VIEWS_DIR.is_dir():
            return {}
        return {p.stem: _view_sql(p) for p in sorted(VIEWS_DIR.glob("*.sql"))}

    @staticmethod
    def _view_tag(body: str) -> str:
        return "receivables:" + hashlib.sha256(body.encode()).hexdigest()[:16]

    def _stale_views(self, conn: Connection, views: dict[str, str]) -> set[str]:
        """Views whose stored definition is not the one in sql/views."""
        if self.is_sqlite:
            stored = dict(conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'view'")).all())
            return {name for name, body in views.items() if stored.get(name) != f"CREATE VIEW {name} AS {body}"}
        stored = dict(conn.execute(text(
            "SELECT c.relname, obj_description(c.oid, 'pg_class') FROM pg_class c "
            "WHERE c.relkind = 'v' AND c.relnamespace = to_regnamespace(current_schema())")).all())
        return {name for name, body in views.items() if stored.get(name) != self._view_tag(body)}

    def _create_views(self, conn: Connection) -> None:
        views = self._view_definitions()
        for name in sorted(self._stale_views(conn, views)):
            body = views[name]
            conn.exec_driver_sql(f"DROP VIEW IF EXISTS {name}")
            conn.exec_driver_sql(f"CREATE VIEW {name} AS {body}")
            if self.is_postgres:
                conn.exec_driver_sql(f"COMMENT ON VIEW {name} IS '{self._view_tag(body)}'")

    def tables(self) -> list[str]:
        return sorted(inspect(self.engine).get_table_names())

    def load_key_rates(self, csv_path: Path) -> int:
        """The Bank of Russia key rates (table key_rate) made equal to the CSV
        (date_from, rate_percent, verified=yes|no); writes only what changed."""
        with open(csv_path, encoding="utf-8") as fh:
            wanted = {dt.date.fromisoformat(r["date_from"].strip()):
                      (Decimal(r["rate_percent"].strip()).quantize(Decimal("0.01")),
                       (r.get("verified") or "").strip().lower() in ("yes", "true", "1"))
                      for r in csv.DictReader(fh)}

        def current(conn: Connection) -> dict[dt.date, tuple[Decimal, bool]]:
            rows = conn.execute(select(key_rate.c.date_from, key_rate.c.rate_percent, key_rate.c.verified))
            return {r.date_from: (Decimal(str(r.rate_percent)).quantize(Decimal("0.01")), bool(r.verified))
                    for r in rows}

        with self.engine.connect() as conn:
            if current(conn) == wanted:
                return len(wanted)
        with self._write("receivables.key_rate") as conn:
            have = current(conn)
            gone = sorted(set(have) - set(wanted))
            if gone:
                conn.execute(delete(key_rate).where(key_rate.c.date_from.in_(gone)))
            changed = [{"date_from": d, "rate_percent": r, "verified": v}
                       for d, (r, v) in sorted(wanted.items()) if have.get(d) != (r, v)]
            if changed:
                stmt = register.dialect_insert(conn)(key_rate)
                stmt = stmt.on_conflict_do_update(index_elements=["date_from"], set_={
                    "rate_percent": stmt.excluded.rate_percent, "verified": stmt.excluded.verified})
                conn.execute(stmt, changed)
        return len(wanted)

    # -- aging snapshot --------------------------------------------------------------

    def replace_snapshot(self, as_of: dt.date, aging: pd.DataFrame, *, infobase: str = "default") -> int:
        """Replace the (infobase, as-of date) rows with `aging`, in one transaction.

        Money columns arrive as int64 kopecks and are stored as exact NUMERIC rubles;
        dates arrive as datetime64 and are stored as DATE. Columns the table does not
        have are ignored. Bulk path: COPY on PostgreSQL, executemany of tuples on
        SQLite, in batches of CHUNK_ROWS. Returns the number of rows written.
        """
        day = convert.day(as_of)
        if day is None:
            raise ValueError("replace_snapshot: as_of is required")
        self._check_snapshot(day, aging)
        # in key order: the unique index then grows at its end instead of everywhere
        frame = aging.sort_values("document_ref", kind="stable", ignore_index=True)
        cols = ["infobase", "as_of_date", *[c for c in aging_snapshot.columns.keys()
                                             if c in frame.columns and c not in ("infobase", "as_of_date")]]
        ignored = sorted(set(frame.columns) - set(aging_snapshot.columns.keys()))
        if ignored:
            log.debug("replace_snapshot: columns not in aging_snapshot ignored: %s", ignored)

        def work(conn: Connection) -> int:
            t = aging_snapshot
            conn.execute(delete(t).where(and_(t.c.infobase == infobase, t.c.as_of_date == day)))
            parts = (frame.iloc[start:start + CHUNK_ROWS] for start in range(0, len(frame), CHUNK_ROWS))
            if self.is_postgres:
                convert.copy_batches(conn, t.name, (self._snapshot_columns(cols, part, day, infobase)
                                                    for part in parts))
            else:
                for part in parts:
                    self._executemany_snapshot(conn, cols, part, day, infobase)
            return len(frame)

        return self._retrying(work, "aging_snapshot", infobase, day)

    @staticmethod
    def _check_snapshot(day: dt.date, frame: pd.DataFrame) -> None:
        if "document_ref" not in frame.columns:
            raise ValueError("replace_snapshot: the frame needs a document_ref column")
        if frame["document_ref"].isna().any():
            raise ValueError("replace_snapshot: document_ref must not be empty")
        if frame["document_ref"].duplicated().any():
            dup = frame.loc[frame["document_ref"].duplicated(), "document_ref"].iloc[0]
            raise ValueError(f"replace_snapshot: document_ref {dup!r} appears more than once")
        if "as_of_date" in frame.columns and len(frame):
            dates = pd.to_datetime(frame["as_of_date"]).to_numpy(dtype="datetime64[ns]").astype("datetime64[D]")
            if (dates != np.datetime64(day, "D")).any():
                raise ValueError(f"replace_snapshot: rows with an as_of_date other than {day} in the frame")

    @staticmethod
    def _kind(name: str, table: Any = aging_snapshot) -> str:
        """How a column of `table` is written: money, date, moment, int or text."""
        col = table.c[name]
        if name in MONEY_COLUMNS[table.name]:
            return "money"
        if isinstance(col.type, DateTime):
            return "moment"
        if isinstance(col.type, Date):
            return "date"
        return "int" if isinstance(col.type, Integer) else "text"

    def _executemany_snapshot(self, conn: Connection, cols: list[str], part: pd.DataFrame, day: dt.date,
                              infobase: str) -> None:
        """SQLite: one executemany of plain tuples (dates as ISO text, money as the double)."""
        n = len(part)
        columns: list[list[Any]] = []
        for name in cols:
            kind = "const" if name in ("infobase", "as_of_date") else self._kind(name)
            if kind == "const":
                columns.append([infobase if name == "infobase" else day.isoformat()] * n)
            elif kind == "money":
                columns.append(convert.money_sqlite(part[name], name))
            elif kind == "date":
                columns.append(convert.date_text(part[name]))
            elif kind == "int":
                columns.append(convert.int_values(part[name]))
            else:
                columns.append(convert.text_values(part[name]))
        quote = conn.dialect.identifier_preparer.quote
        sql = (f"INSERT INTO aging_snapshot ({', '.join(quote(c) for c in cols)}) "
               f"VALUES ({', '.join('?' for _ in cols)})")
        cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cur.executemany(sql, zip(*columns, strict=True))
        finally:
            cur.close()

    def _snapshot_columns(self, cols: list[str], part: pd.DataFrame, day: dt.date,
                          infobase: str) -> dict[str, Any]:
        """PostgreSQL: a batch of snapshot rows as COPY text, built column-wise with pyarrow
        (exact money text)."""
        constants = {"infobase": infobase, "as_of_date": day.isoformat()}
        return {name: convert.copy_constant(constants[name], len(part)) if name in constants
                else self._copy_column(aging_snapshot, name, part[name]) for name in cols}

    def _copy_column(self, table: Any, name: str, series: pd.Series) -> Any:
        """One column of `table` as COPY text (`convert.copy_*`), by the column's kind."""
        kind = self._kind(name, table)
        if kind == "money":
            return convert.copy_money_column(series, name)
        if kind == "date":
            return convert.copy_date_column(series)
        if kind == "moment":
            return convert.copy_moment_column(series)
        return convert.copy_int_column(series) if kind == "int" else convert.copy_text_column(series)

    def _days(self, col: Any) -> Any:
        """A DATE column as days since 1970-01-01 (fast to turn into datetime64)."""
        if self.is_sqlite:
            return cast(func.julianday(col) - 2440587.5, Integer)
        return cast(col - literal(_EPOCH, Date), Integer)

    @staticmethod
    def _kopecks(col: Any) -> Any:
        """A NUMERIC rubles column as integer kopecks, computed by the database."""
        return cast(func.round(col * 100), BigInteger)

    def _read_frame(self, table: Any, where: list[Any], order_by: list[Any]) -> pd.DataFrame:
        """Rows of `table` as a typed frame: money as int64 kopecks, dates as datetime64[s],
        moments as datetime64[us, UTC] (PostgreSQL: by COPY, parsed column-wise)."""
        money = set(MONEY_COLUMNS.get(table.name, ()))
        exprs, kinds = [], []
        for c in table.columns:
            if c.name in money:
                exprs.append(self._kopecks(c).label(c.name))
                kinds.append("int")
            elif isinstance(c.type, Date):
                exprs.append(self._days(c).label(c.name))
                kinds.append("date")
            elif isinstance(c.type, DateTime) and self.is_postgres:
                # microseconds since the epoch: an integer column, exact, in any session time zone
                exprs.append(cast(func.round(func.extract("epoch", c) * 1_000_000), BigInteger).label(c.name))
                kinds.append("moment")
            else:
                exprs.append(c)
                kinds.append("moment" if isinstance(c.type, DateTime) else
                             "int" if isinstance(c.type, Integer) else "text")
        q = select(*exprs).where(*where).order_by(*order_by)
        with self.engine.connect() as conn:
            if self.is_postgres:
                return self._fetch_copy(conn, q, kinds)
            cols = self._fetch_raw(conn, q)
        out: dict[str, pd.Series] = {}
        for c, kind, values in zip(table.columns, kinds, cols, strict=True):
            if kind == "int":
                out[c.name] = convert.int_series(values)
            elif kind == "date":
                out[c.name] = convert.dates_from_days(values)
            elif kind == "moment":  # SQLite keeps them as text
                out[c.name] = convert.utc_series(values)
            else:
                out[c.name] = pd.Series(values, dtype="str")
        return pd.DataFrame(out)

    @staticmethod
    def _fetch_raw(conn: Connection, query: Any) -> list[list[Any]]:
        """SQLite: the query's columns through the driver's cursor (no per-row SQLAlchemy work)."""
        compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
        params = [compiled.params[name] for name in (compiled.positiontup or [])]
        params = [v.isoformat() if isinstance(v, dt.date) else v for v in params]
        cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            rows = cur.execute(str(compiled), params).fetchall()
        finally:
            cur.close()
        width = len(query.selected_columns)
        return [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]

    @staticmethod
    def _fetch_copy(conn: Connection, query: Any, kinds: list[str]) -> pd.DataFrame:
        """PostgreSQL: ``COPY (query) TO STDOUT`` as CSV, parsed by pyarrow (NULL is an
        unquoted empty field, an empty string a quoted one)."""
        import io

        import pyarrow as pa
        import pyarrow.compute as pc
        from pyarrow import csv as pacsv

        compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
        names = [c.name for c in query.selected_columns]
        cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        buf = io.BytesIO()
        try:
            sql = cur.mogrify(str(compiled), compiled.params).decode()
            cur.copy_expert(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)", buf, size=1 << 20)
        finally:
            cur.close()
        buf.seek(0)
        types = {n: (pa.large_string() if k == "text" else pa.int64()) for n, k in zip(names, kinds, strict=True)}
        if buf.getbuffer().nbytes:
            table = pacsv.read_csv(
                buf, read_options=pacsv.ReadOptions(column_names=names),
                parse_options=pacsv.ParseOptions(newlines_in_values=True),
                convert_options=pacsv.ConvertOptions(column_types=types, null_values=[""], strings_can_be_null=True,
                                                     quoted_strings_can_be_null=False))
        else:  # no rows: pyarrow refuses an empty file
            table = pa.table({n: pa.array([], types[n]) for n in names})
        # the CSV text goes before the columns are made (at a million snapshot rows it is about the
        # table's size again: the report task's peak), and the frame keeps the columns as they are
        # made rather than copying its numbers into one block
        del buf
        out: dict[str, pd.Series] = {}
        for name, kind in zip(names, kinds, strict=True):
            col = table.column(name).combine_chunks()
            if kind == "text":
                out[name] = pd.Series(col.to_pandas(), dtype="str")
                continue
            ints = pc.fill_null(col, 0).to_numpy().astype("int64", copy=False)
            null = col.is_null().to_numpy(zero_copy_only=False) if col.null_count else None
            if kind == "int":
                out[name] = pd.Series(ints if null is None else pd.arrays.IntegerArray(ints, null))
                continue
            # days or microseconds since the epoch; NULL: NaT
            stamps = ints.astype("datetime64[D]").astype("datetime64[s]") if kind == "date" else ints.astype(
                "datetime64[us]")
            if null is not None:
                stamps[null] = np.datetime64("NaT")
            out[name] = pd.Series(stamps) if kind == "date" else pd.Series(stamps).dt.tz_localize("UTC")
        return pd.DataFrame(out, copy=False)

    def read_snapshot(self, as_of: dt.date, *, infobase: str | None = None) -> pd.DataFrame:
        """That date's rows (every infobase unless one is named), by infobase and document:
        money as int64 kopecks, dates as datetime64[s], integers as int64."""
        t = aging_snapshot
        where = [t.c.as_of_date == convert.day(as_of)]
        if infobase is not None:
            where.append(t.c.infobase == infobase)
        return self._read_frame(t, where, [t.c.infobase, t.c.document_ref])

    def snapshot_totals(self) -> pd.DataFrame:
        """Documents and outstanding (kopecks) per (as_of_date, bucket) over every stored date."""
        t = aging_snapshot
        q = (select(self._days(t.c.as_of_date).label("as_of_date"), t.c.bucket,
                    func.count().label("documents"),
                    cast(func.sum(self._kopecks(t.c.outstanding)), BigInteger).label("outstanding"))
             .group_by(t.c.as_of_date, t.c.bucket).order_by(t.c.as_of_date, t.c.bucket))
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        days, buckets, docs, money = (list(x) for x in zip(*rows, strict=True)) if rows else ([], [], [], [])
        return pd.DataFrame({"as_of_date": convert.dates_from_days(days), "bucket": pd.Series(buckets, dtype="str"),
                             "documents": pd.Series(docs, dtype="int64"),
                             "outstanding": convert.kopecks_series(money)})

    def snapshot_members(self, dates: Iterable[dt.date]) -> pd.DataFrame:
        """(as_of_date, document_ref) of the open documents on the given dates."""
        t = aging_snapshot
        wanted = sorted({convert.day(d) for d in dates} - {None})
        rows: list[Any] = []
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), 500):
                q = select(self._days(t.c.as_of_date), t.c.document_ref).where(
                    t.c.as_of_date.in_(wanted[start:start + 500]))
                rows.extend(conn.execute(q).all())
        days, refs = (list(x) for x in zip(*rows, strict=True)) if rows else ([], [])
        return pd.DataFrame({"as_of_date": convert.dates_from_days(days), "document_ref": pd.Series(refs, dtype="str")})

    def snapshot_members_among(self, pairs: pd.DataFrame) -> pd.DataFrame:
        """Those of the (as_of_date, document_ref) `pairs` that are open documents of a stored
        snapshot (of any infobase), each once: looked up date by date, the documents in pages,
        instead of reading every member of every date."""
        t = aging_snapshot
        rows: list[Any] = []
        wanted = pairs.assign(day=[convert.day(d) for d in pairs["as_of_date"]]).dropna(subset=["day", "document_ref"])
        with self.engine.connect() as conn:
            for day, refs in wanted.groupby("day")["document_ref"]:
                refs = sorted(set(refs.astype("str")))
                for start in range(0, len(refs), 1000):
                    q = (select(self._days(t.c.as_of_date), t.c.document_ref).distinct()
                         .where(t.c.as_of_date == day, t.c.document_ref.in_(refs[start:start + 1000])))
                    rows.extend(conn.execute(q).all())
        days, refs = (list(x) for x in zip(*rows, strict=True)) if rows else ([], [])
        return pd.DataFrame({"as_of_date": convert.dates_from_days(days), "document_ref": pd.Series(refs, dtype="str")})

    def replace_plan(self, as_of: dt.date, run_id: str, plan: pd.DataFrame | Path) -> int:
        """The date's latest plan (every decision but ``excluded``), for SQL users' preview.
        `plan` is the plan, or its Parquet file (the plan task's plan.parquet, written in parts):
        read a row group at a time, only the table's columns and rows (again from the start when
        the transaction is retried). PostgreSQL: COPY in batches of CHUNK_ROWS (a million open
        documents' plan keeps ~1.7M rows); SQLite: inserts of parameter rows. Returns the number
        of rows written."""
        t = collection_plan
        day = convert.day(as_of)

        def parts() -> Iterable[pd.DataFrame]:
            return [plan] if isinstance(plan, pd.DataFrame) else self._plan_file_parts(Path(plan))

        def kept(part: pd.DataFrame) -> pd.DataFrame:
            return part.loc[part["decision"].ne("excluded").to_numpy()] if "decision" in part.columns else part

        def cols(rows: pd.DataFrame) -> list[str]:
            return [c for c in t.columns.keys() if c in rows.columns and c not in ("as_of_date", "run_id")]

        def columns(part: pd.DataFrame) -> dict[str, Any]:
            return {"as_of_date": convert.copy_constant(day.isoformat(), len(part)),
                    "run_id": convert.copy_constant(run_id, len(part)),
                    **{c: self._copy_column(t, c, part[c]) for c in cols(part)}}

        def copy(conn: Connection) -> int:
            n = 0

            def batches() -> Iterator[dict[str, Any]]:
                nonlocal n
                for part in parts():
                    rows = kept(part)
                    n += len(rows)
                    for start in range(0, len(rows), CHUNK_ROWS):
                        yield columns(rows.iloc[start:start + CHUNK_ROWS])

            convert.copy_batches(conn, t.name, batches())
            return n

        def insert_rows(conn: Connection) -> int:
            n = 0
            for part in parts():
                rows = kept(part)
                n += len(rows)
                data: dict[str, list[Any]] = {"as_of_date": [day] * len(rows), "run_id": [run_id] * len(rows)}
                for c in cols(rows):
                    if c == "outstanding":
                        data[c] = [convert.rubles(v) for v in convert.text_values(rows[c])]
                    elif isinstance(t.c[c].type, Date):
                        data[c] = [convert.day(v) for v in convert.text_values(rows[c])]
                    else:
                        data[c] = convert.text_values(rows[c])
                payload = [dict(zip(data, values, strict=True)) for values in zip(*data.values(), strict=True)]
                for start in range(0, len(payload), 10_000):
                    conn.execute(insert(t), payload[start:start + 10_000])
            return n

        def work(conn: Connection) -> int:
            conn.execute(delete(t).where(t.c.as_of_date == day))
            return (copy if self.is_postgres else insert_rows)(conn)

        return self._retrying(work, "collection_plan", day)

    @staticmethod
    def _plan_file_parts(path: Path) -> Iterator[pd.DataFrame]:
        """A plan's Parquet file a row group at a time: `collection_plan`'s columns, the rows it
        keeps (a million open documents' plan is 4.6M rows, 1.7M of them kept)."""
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        file = pq.ParquetFile(path)
        have = set(file.schema_arrow.names)
        cols = [c for c in collection_plan.columns.keys() if c in have]
        for group in range(file.num_row_groups):
            rows = file.read_row_group(group, columns=cols)
            if "decision" in have:  # (a missing decision is kept, as `kept` keeps it)
                rows = rows.filter(pc.fill_null(pc.not_equal(rows["decision"], "excluded"), True))
            yield rows.to_pandas()

    # -- register: the exactly-once protocol (see receivables.store.register) ---------

    def read_register(self, document_refs: Iterable[str] | None = None, *,
                      sent_or_failed: bool = False) -> pd.DataFrame:
        """Register rows (all, or of the given documents; with `sent_or_failed` only the rows sent
        or failed, the ones the plan reads): every column; ``sent_at`` and ``updated_at`` tz-aware
        UTC, ``as_of_date`` a date, ``attempts`` int. Read column-wise (the plan and report tasks
        read it: millions of rows at a large company)."""
        t = collection_register
        order = [t.c.document_ref, t.c.step_id]
        where = [or_(t.c.sent_at.is_not(None), t.c.status == "failed")] if sent_or_failed else []
        if document_refs is None:
            df = self._read_frame(t, where, order)
        else:
            refs = sorted(set(document_refs))
            # an empty list still reads once: the frame of every column, typed, with no rows
            parts = [self._read_frame(t, [*where, t.c.document_ref.in_(refs[start:start + 1000])], order)
                     for start in range(0, max(len(refs), 1), 1000)]
            df = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
        for c in ("sent_at", "updated_at"):
            df[c] = df[c].astype("datetime64[us, UTC]")
        days = df["as_of_date"].to_numpy(dtype="datetime64[D]")
        df["as_of_date"] = pd.Series(days.astype(object), index=df.index, dtype=object)  # dates; NaT: None
        df["attempts"] = df["attempts"].fillna(0).astype("int64")
        return df

    def register_counts(self, run_id: str) -> dict[str, int]:
        """``"action:status" -> rows`` of the register rows `run_id` touched last (rows without an
        action left out), counted by the database: a run's outcomes without reading the register."""
        t = collection_register
        q = (select(t.c.action, t.c.status, func.count()).where(t.c.run_id == run_id, t.c.action.is_not(None))
             .group_by(t.c.action, t.c.status))
        with self.engine.connect() as conn:
            return {f"{action}:{status}": int(n) for action, status, n in conn.execute(q).all()}

    def claim(self, rows: pd.DataFrame, *, run_id: str, as_of: dt.date, infobase: str = "default",
              stale_after: dt.timedelta = dt.timedelta(hours=6)) -> pd.DataFrame:
        """Make rows ``pending`` before their side effect and return the ones this call
        holds, with the stored ``external_ref`` and ``was_pending`` (see `register.claim`).

        `rows`: document_ref, document_number, partner_ref, step_id, action, target,
        external_ref (more columns are carried through). A ``pending`` row of another run
        is taken over only after `stale_after` without news from that run.
        """
        day = convert.day(as_of)
        return self._retrying(lambda conn: register.claim(conn, rows, run_id=run_id, as_of=day, now=_now(),
                                                          stale_after=stale_after, infobase=infobase))

    def complete(self, rows: pd.DataFrame, *, run_id: str | None = None,
                 log: pd.DataFrame | None = None) -> None:
        """Outcomes after the side effects: document_ref, step_id, status, sent_at,
        external_ref, detail (see `register.complete`); with `log`, its rows are appended to
        collection_log in the same transaction (an outcome and its log row, or neither; one
        commit per letter instead of two)."""
        payload = self._log_payload(log) if log is not None else []

        def work(conn: Connection) -> None:
            register.complete(conn, rows, now=_now(), run_id=run_id)
            self._insert_log(conn, payload)

        self._retrying(work)

    def record_decisions(self, rows: pd.DataFrame, *, run_id: str, as_of: dt.date,
                         infobase: str = "default") -> int:
        """Upsert non-acting decisions (skipped, superseded, planned) where no row exists
        or the row is neither done nor pending (see `register.record_decisions`)."""
        day = convert.day(as_of)
        return self._retrying(lambda conn: register.record_decisions(conn, rows, run_id=run_id, as_of=day,
                                                                     now=_now(), infobase=infobase))

    # -- log ---------------------------------------------------------------------------

    def append_log(self, rows: pd.DataFrame | list[dict[str, Any]]) -> int:
        """Append rows to collection_log (``logged_at`` defaults to now, UTC). Columns the
        log does not have are ignored; ``id`` is assigned by the database. A frame goes to
        PostgreSQL by COPY (a plan at a million open documents logs ~1.4M rows)."""
        if self.is_postgres and isinstance(rows, pd.DataFrame):
            return self._copy_log(rows)
        payload = self._log_payload(rows)
        if payload:
            with self.engine.begin() as conn:
                self._insert_log(conn, payload)
        return len(payload)

    def _copy_log(self, frame: pd.DataFrame) -> int:
        """`append_log` of a frame by COPY: the values `_log_payload` gives, as COPY text."""
        t = collection_log
        cols = [c for c in t.columns.keys() if c != "id" and (c in frame.columns or c == "logged_at")]
        now = _now()  # one moment for the rows that give none, as `_log_payload` has
        now_text = convert.copy_moment_column(pd.Series([now])).to_pylist()[0]

        def columns(part: pd.DataFrame) -> dict[str, Any]:
            out = {}
            for c in cols:
                if c == "logged_at" and (c not in part.columns or part[c].isna().all()):
                    out[c] = convert.copy_constant(now_text, len(part))  # the usual case: all now
                elif c == "logged_at":  # the missing ones: now
                    out[c] = convert.copy_moment_column(part[c].astype(object).fillna(now))
                else:
                    out[c] = self._copy_column(t, c, part[c])
            return out

        with self.engine.begin() as conn:
            convert.copy_batches(conn, t.name, (columns(frame.iloc[start:start + CHUNK_ROWS])
                                                for start in range(0, len(frame), CHUNK_ROWS)))
        return len(frame)

    @staticmethod
    def _log_payload(rows: pd.DataFrame | list[dict[str, Any]]) -> list[dict[str, Any]]:
        """collection_log rows as the insert takes them (see `append_log`)."""
        frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
        n = len(frame)
        if not n:
            return []
        now = _now()
        t = collection_log
        data: dict[str, list[Any]] = {}
        for c in t.columns.keys():
            if c == "id" or (c not in frame.columns and c != "logged_at"):
                continue
            if c == "logged_at":
                given = convert.text_values(frame[c]) if c in frame.columns else [None] * n
                data[c] = [convert.utc(v) or now for v in given]
            elif c == "as_of_date":
                data[c] = [convert.day(v) for v in convert.text_values(frame[c])]
            else:
                data[c] = [None if v is None else str(v) for v in convert.text_values(frame[c])]
        return [dict(zip(data, values, strict=True)) for values in zip(*data.values(), strict=True)]

    @staticmethod
    def _insert_log(conn: Connection, payload: list[dict[str, Any]]) -> None:
        for start in range(0, len(payload), 10_000):
            conn.execute(insert(collection_log), payload[start:start + 10_000])

    def log_counts(self, outcomes: Iterable[str]) -> pd.DataFrame:
        """(day, action, outcome, count): the log's rows with those outcomes counted per as-of
        date (a ``datetime.date``), action and outcome by the database, rows without a date or
        an action left out; ordered by day, action, outcome. The report's timeline, without
        reading a log that grows by every run's decisions."""
        t = collection_log
        q = (select(self._days(t.c.as_of_date), t.c.action, t.c.outcome, func.count())
             .where(t.c.outcome.in_(sorted(set(outcomes))), t.c.as_of_date.is_not(None), t.c.action.is_not(None))
             .group_by(t.c.as_of_date, t.c.action, t.c.outcome)
             .order_by(t.c.as_of_date, t.c.action, t.c.outcome))
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        days, actions, outcomes_, counts = (list(x) for x in zip(*rows, strict=True)) if rows else ([], [], [], [])
        return pd.DataFrame({"day": [d.date() for d in convert.dates_from_days(days)],
                             "action": pd.Series(actions, dtype=object), "outcome": pd.Series(outcomes_, dtype=object),
                             "count": pd.Series(counts, dtype="int64")})

    def read_log(self) -> pd.DataFrame:
        """The whole log in insertion order; ``logged_at`` tz-aware UTC."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(collection_log).order_by(collection_log.c.id)).all()
        df = pd.DataFrame([tuple(r) for r in rows], columns=list(collection_log.columns.keys()))
        df["logged_at"] = convert.utc_series(df["logged_at"].tolist(), index=df.index)
        return df

    # -- runs --------------------------------------------------------------------------

    def acquire_run_lock(self, as_of: dt.date, run_id: str, *, infobase: str = "default",
                         stale_after: dt.timedelta = dt.timedelta(hours=6)) -> bool:
        """Take the (infobase, as-of date) lock that lets one run act for that date.

        True when this call took it, the same run_id already holds it (a retry; its
        ``acquired_at`` is refreshed), or the holder's lock is older than `stale_after`
        (that run died) and was taken over. False while another run holds it.
        """
        day = convert.day(as_of)
        t = run_lock
        key = and_(t.c.infobase == infobase, t.c.as_of_date == day)

        def work(conn: Connection) -> bool:
            now = _now()
            conn.execute(register.dialect_insert(conn)(t).on_conflict_do_nothing(
                index_elements=["infobase", "as_of_date"]),
                {"infobase": infobase, "as_of_date": day, "run_id": run_id, "acquired_at": now})
            conn.execute(update(t).where(key, (t.c.run_id == run_id) | (t.c.acquired_at < now - stale_after))
                         .values(run_id=run_id, acquired_at=now))
            return conn.execute(select(t.c.run_id).where(key)).scalar_one() == run_id

        return self._retrying(work)

    def release_run_lock(self, as_of: dt.date, run_id: str, *, infobase: str = "default") -> bool:
        """Release the lock if `run_id` holds it; True if it did."""
        t = run_lock
        day = convert.day(as_of)
        with self._write() as conn:
            gone = conn.execute(delete(t).where(t.c.infobase == infobase, t.c.as_of_date == day,
                                                t.c.run_id == run_id).returning(t.c.run_id)).all()
        return bool(gone)

    def lock_holder(self, as_of: dt.date, *, infobase: str = "default") -> tuple[str, dt.datetime] | None:
        """(run_id, acquired_at UTC) of the run holding the date's lock, if any."""
        t = run_lock
        with self.engine.connect() as conn:
            row = conn.execute(select(t.c.run_id, t.c.acquired_at).where(
                t.c.infobase == infobase, t.c.as_of_date == convert.day(as_of))).first()
        return (row.run_id, register._aware(row.acquired_at)) if row else None

    def save_run_summary(self, *, run_id: str, as_of_date: dt.date, mode: str, acting: bool,
                         counts: dict[str, int], documents_read: int, open_documents: int,
                         outstanding: int, started_at: dt.datetime | None = None,
                         finished_at: dt.datetime | None = None, sales_30d: int | None = None,
                         sales_90d: int | None = None) -> None:
        """Upsert the run's summary (money in kopecks, stored as rubles; counts as JSON).
        Without `started_at`, a summary saved earlier for the run keeps its start."""
        now = _now()
        values = {"run_id": run_id, "as_of_date": convert.day(as_of_date), "mode": mode, "acting": bool(acting),
                  "started_at": convert.utc(started_at) or now, "finished_at": convert.utc(finished_at) or now,
                  "counts": json.dumps(counts, ensure_ascii=False, sort_keys=True, default=int),
                  "documents_read": int(documents_read), "open_documents": int(open_documents),
                  "outstanding": convert.rubles(outstanding), "sales_30d": convert.rubles(sales_30d),
                  "sales_90d": convert.rubles(sales_90d)}

        def work(conn: Connection) -> None:
            stmt = register.dialect_insert(conn)(run_summary)
            set_ = {k: stmt.excluded[k] for k in values if k != "run_id"}
            if started_at is None:
                set_["started_at"] = func.coalesce(run_summary.c.started_at, stmt.excluded.started_at)
            conn.execute(stmt.on_conflict_do_update(index_elements=["run_id"], set_=set_), values)

        self._retrying(work)

    def read_run_summaries(self) -> pd.DataFrame:
        """Every run summary by start time: money as stored (NUMERIC rubles), times UTC."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(run_summary).order_by(run_summary.c.started_at, run_summary.c.run_id)).all()
        df = pd.DataFrame([tuple(r) for r in rows], columns=list(run_summary.columns.keys()))
        for c in ("started_at", "finished_at"):
            df[c] = convert.utc_series(df[c].tolist(), index=df.index)
        return df
