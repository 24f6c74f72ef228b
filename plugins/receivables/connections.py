"""The Airflow edge: connections ``onec_default``, ``smtp_default`` and ``receivables_db``.

Turns Airflow connections into the plain objects the pipeline uses, so no other module
needs Airflow. Secrets stay inside the returned objects and are never logged.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook
from sqlalchemy.engine import URL

from receivables.actions.email import SmtpSettings
from receivables.onec.client import ODataClient
from receivables.onec.hook import OneCODataHook

ONEC_CONN_ID = "onec_default"
SMTP_CONN_ID = "smtp_default"
WAREHOUSE_CONN_ID = "receivables_db"


def _flag(extra: dict[str, Any], key: str) -> bool:
    value = extra.get(key, False)
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def onec_client(conn_id: str = ONEC_CONN_ID) -> ODataClient:
    return OneCODataHook(conn_id).get_conn()


def smtp_settings(conn_id: str = SMTP_CONN_ID) -> SmtpSettings:
    """The smtp provider's connection fields; SSL/STARTTLS on unless disabled, like SmtpHook."""
    conn = BaseHook.get_connection(conn_id)
    extra = conn.extra_dejson or {}
    if not conn.host:
        raise ValueError(f"connection {conn_id!r}: host is empty")
    return SmtpSettings(
        host=conn.host,
        port=int(conn.port or 25),
        login=conn.login or None,
        password=conn.password or None,
        from_email=extra.get("from_email") or None,
        use_ssl=not _flag(extra, "disable_ssl"),
        use_starttls=not _flag(extra, "disable_tls"),
        timeout=float(extra.get("timeout", 30)),
    )


def warehouse_url(conn_id: str = WAREHOUSE_CONN_ID) -> str:
    """SQLAlchemy URL of the warehouse: sqlite (host = file path) or postgres."""
    conn = BaseHook.get_connection(conn_id)
    kind = (conn.conn_type or "").lower()
    if kind == "sqlite":
        path = conn.host or (conn.extra_dejson or {}).get("path")
        if not path:
            raise ValueError(f"connection {conn_id!r} (sqlite): host must be the database file path")
        return f"sqlite:///{path}"
    if kind in ("postgres", "postgresql"):
        return URL.create("postgresql+psycopg2", username=conn.login or None,
                          password=conn.password or None, host=conn.host or "127.0.0.1",
                          port=conn.port or 5432, database=conn.schema or "postgres"
                          ).render_as_string(hide_password=False)
    raise ValueError(f"connection {conn_id!r}: type must be sqlite or postgres, got {kind!r}")


def warehouse(conn_id: str = WAREHOUSE_CONN_ID):
    from receivables import settings
    from receivables.store.warehouse import Warehouse

    wh = Warehouse(warehouse_url(conn_id))
    wh.create_schema()
    wh.load_key_rates(settings.key_rates_path())
    return wh
