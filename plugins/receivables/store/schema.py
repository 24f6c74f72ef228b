"""Warehouse tables (spec §4 fixes the names and columns; extra columns are ours)."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()
MONEY = Numeric(18, 2)
TS = DateTime(timezone=True)

aging_snapshot = Table(
    "aging_snapshot", metadata,
    Column("infobase", String(64), nullable=False, default="default"),
    Column("as_of_date", Date, nullable=False),
    Column("document_ref", String(36), nullable=False),
    Column("document_number", String(64)),
    Column("document_date", Date),
    Column("partner_ref", String(36)),
    Column("partner_name", Text),
    Column("organization_ref", String(36)),
    Column("organization_name", Text),
    Column("contract_ref", String(36)),
    Column("manager_ref", String(36)),
    Column("manager_name", Text),
    Column("settlement", String(64)),
    Column("due_date", Date),
    Column("amount", MONEY),
    Column("paid", MONEY),
    Column("outstanding", MONEY),
    Column("days_overdue", Integer),
    Column("business_days_overdue", Integer),
    Column("bucket", String(16)),
    Column("partner_debt", MONEY),
    Column("contract_debt", MONEY),
    Column("segment", Text),
    UniqueConstraint("infobase", "as_of_date", "document_ref", name="uq_aging_snapshot"),
    Index("ix_aging_snapshot_as_of", "as_of_date"),
)

collection_register = Table(
    "collection_register", metadata,
    Column("document_ref", String(36), nullable=False),
    Column("document_number", String(64)),
    Column("partner_ref", String(36)),
    Column("step_id", String(64), nullable=False),
    Column("action", String(16)),
    Column("target", Text),
    Column("status", String(16), nullable=False),
    Column("sent_at", TS),
    Column("external_ref", Text),
    Column("detail", Text),
    Column("run_id", Text),
    Column("as_of_date", Date),
    Column("updated_at", TS),
    Column("attempts", Integer, nullable=False, default=0),
    Column("infobase", String(64), nullable=False, default="default"),
    UniqueConstraint("document_ref", "step_id", name="uq_collection_register"),
)

collection_log = Table(
    "collection_log", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("logged_at", TS, nullable=False),
    Column("run_id", Text),
    Column("as_of_date", Date),
    Column("document_ref", String(36)),
    Column("document_number", String(64)),
    Column("partner_ref", String(36)),
    Column("step_id", String(64)),
    Column("action", String(16)),
    Column("target", Text),
    Column("outcome", String(32)),
    Column("reason", Text),
    Column("detail", Text),
    Column("external_ref", Text),
    Column("mode", String(16)),
    Index("ix_collection_log_run", "run_id"),
)

run_summary = Table(
    "run_summary", metadata,
    Column("run_id", String(250), primary_key=True),
    Column("as_of_date", Date),
    Column("mode", String(16)),
    Column("acting", Boolean),
    Column("started_at", TS),
    Column("finished_at", TS),
    Column("counts", Text),
    Column("documents_read", Integer),
    Column("open_documents", Integer),
    Column("outstanding", MONEY),
    Column("sales_30d", MONEY),
    Column("sales_90d", MONEY),
)

run_lock = Table(
    "run_lock", metadata,
    Column("infobase", String(64), primary_key=True),
    Column("as_of_date", Date, primary_key=True),
    Column("run_id", String(250), nullable=False),
    Column("acquired_at", TS, nullable=False),
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
    Column("run_id", String(250), nullable=False),
    Column("document_ref", String(36), nullable=False),
    Column("document_number", String(64)),
    Column("partner_ref", String(36)),
    Column("partner_name", Text),
    Column("step_id", String(64)),
    Column("action", String(16)),
    Column("decision", String(16)),
    Column("reason", String(64)),
    Column("target", Text),
    Column("due_day", Date),
    Column("outstanding", MONEY),
    Index("ix_collection_plan_as_of", "as_of_date"),
)
