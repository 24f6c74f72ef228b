"""Warehouse tables (spec §4 fixes the names and columns; the extra columns are ours).

Conventions: money is ``NUMERIC(18, 2)`` rubles (exact on PostgreSQL; SQLite has no
decimal type and keeps the nearest double, which round-trips every amount below 2^51
kopecks, 22.5 trillion rubles), calendar dates are ``DATE``, moments are ``TIMESTAMP
WITH TIME ZONE`` in UTC.
Identifiers are ``TEXT``: 1C references are GUIDs, but step ids and run ids are the
user's and Airflow's, and a length limit would only turn into a PostgreSQL error.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData()
MONEY = Numeric(18, 2, asdecimal=True)
TS = DateTime(timezone=True)

#: register statuses; ``pending`` is the outbox state written before a side effect
STATUSES = ("pending", "sent", "failed", "skipped", "planned", "superseded")

aging_snapshot = Table(
    "aging_snapshot", metadata,
    # spec §4, in the spec's order
    Column("as_of_date", Date, nullable=False),
    Column("document_ref", Text, nullable=False),
    Column("document_number", Text),
    Column("document_date", Date),
    Column("partner_ref", Text),
    Column("partner_name", Text),
    Column("organization_ref", Text),
    Column("contract_ref", Text),
    Column("manager_ref", Text),
    Column("due_date", Date),
    Column("amount", MONEY),
    Column("paid", MONEY),
    Column("outstanding", MONEY),
    Column("days_overdue", Integer),
    Column("business_days_overdue", Integer),
    Column("bucket", Text),
    # ours
    Column("infobase", Text, nullable=False, default="default", server_default=text("'default'")),
    Column("organization_name", Text),
    Column("manager_name", Text),
    Column("settlement", Text),
    Column("partner_debt", MONEY),
    Column("contract_debt", MONEY),
    Column("segment", Text),
    UniqueConstraint("infobase", "as_of_date", "document_ref", name="uq_aging_snapshot"),
    Index("ix_aging_snapshot_as_of", "as_of_date"),
)

collection_register = Table(
    "collection_register", metadata,
    Column("document_ref", Text, nullable=False),
    Column("document_number", Text),
    Column("partner_ref", Text),
    Column("step_id", Text, nullable=False),
    Column("action", Text),
    Column("target", Text),
    Column("status", Text, nullable=False),
    Column("sent_at", TS),
    Column("external_ref", Text),
    Column("detail", Text),
    Column("run_id", Text),
    Column("as_of_date", Date),
    Column("updated_at", TS),
    Column("attempts", Integer, nullable=False, default=0, server_default=text("0")),
    Column("infobase", Text, nullable=False, default="default", server_default=text("'default'")),
    UniqueConstraint("document_ref", "step_id", name="uq_collection_register"),
)

collection_log = Table(
    "collection_log", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("logged_at", TS, nullable=False),
    Column("run_id", Text),
    Column("as_of_date", Date),
    Column("document_ref", Text),
    Column("document_number", Text),
    Column("partner_ref", Text),
    Column("step_id", Text),
    Column("action", Text),
    Column("target", Text),
    Column("outcome", Text),
    Column("reason", Text),
    Column("detail", Text),
    Column("external_ref", Text),
    Column("mode", Text),
    Index("ix_collection_log_run", "run_id"),
    Index("ix_collection_log_as_of", "as_of_date"),
    Index("ix_collection_log_document", "document_ref", "step_id"),
)

run_summary = Table(
    "run_summary", metadata,
    Column("run_id", Text, primary_key=True),
    Column("as_of_date", Date),
    Column("mode", Text),
    Column("acting", Boolean),
    Column("started_at", TS),
    Column("finished_at", TS),
    Column("counts", Text),  # JSON object
    Column("documents_read", Integer),
    Column("open_documents", Integer),
    Column("outstanding", MONEY),
    Column("sales_30d", MONEY),
    Column("sales_90d", MONEY),
)

run_lock = Table(
    "run_lock", metadata,
    Column("infobase", Text, nullable=False, default="default", server_default=text("'default'")),
    Column("as_of_date", Date, nullable=False),
    Column("run_id", Text, nullable=False),
    Column("acquired_at", TS, nullable=False),
    PrimaryKeyConstraint("infobase", "as_of_date", name="pk_run_lock"),
)

key_rate = Table(
    "key_rate", metadata,
    Column("date_from", Date, primary_key=True),
    Column("rate_percent", Numeric(6, 2), nullable=False),
    Column("verified", Boolean),
)

collection_plan = Table(
    "collection_plan", metadata,
    Column("as_of_date", Date, nullable=False),
    Column("run_id", Text, nullable=False),
    Column("document_ref", Text, nullable=False),
    Column("document_number", Text),
    Column("partner_ref", Text),
    Column("partner_name", Text),
    Column("step_id", Text),
    Column("action", Text),
    Column("decision", Text),
    Column("reason", Text),
    Column("target", Text),
    Column("due_day", Date),
    Column("outstanding", MONEY),
    Index("ix_collection_plan_as_of", "as_of_date"),
)

#: money columns (kopecks in Python, rubles in the table) per table
MONEY_COLUMNS: dict[str, tuple[str, ...]] = {
    t.name: tuple(c.name for c in t.columns if isinstance(c.type, Numeric) and c.type.precision == 18)
    for t in metadata.sorted_tables
}
