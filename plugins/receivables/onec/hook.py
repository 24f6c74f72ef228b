"""Airflow hook for a 1C OData publication (connection ``onec_default``, type ``http``).

Connection fields: ``schema`` (http/https), ``host``, ``port``, ``login``, ``password``;
extras ``base_path`` (e.g. ``/trade/odata/standard.odata``), optional ``timeout``
(seconds per request), ``page_size``, ``max_retries``, ``infobase`` (a label for results).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook

from receivables.onec.client import ODataClient, ODataConfig


class OneCODataHook(BaseHook):
    """Builds an :class:`ODataClient` from an Airflow connection."""

    conn_name_attr = "onec_conn_id"
    default_conn_name = "onec_default"
    conn_type = "http"
    hook_name = "1C OData"

    def __init__(self, onec_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.onec_conn_id = onec_conn_id
        self._client: ODataClient | None = None

    def config(self) -> ODataConfig:
        conn = self.get_connection(self.onec_conn_id)
        extra = conn.extra_dejson or {}
        scheme = (conn.schema or "http").strip().lower()
        if scheme not in ("http", "https"):
            raise ValueError(
                f"connection {self.onec_conn_id!r}: schema must be 'http' or 'https', got {scheme!r}"
            )
        if not conn.host:
            raise ValueError(f"connection {self.onec_conn_id!r}: host is empty")
        base_path = "/" + str(extra.get("base_path", "/odata/standard.odata")).strip("/")
        port = f":{conn.port}" if conn.port else ""
        return ODataConfig(
            base_url=f"{scheme}://{conn.host}{port}{base_path}",
            login=conn.login or None,
            password=conn.password or None,
            timeout=float(extra.get("timeout", 60)),
            page_size=int(extra.get("page_size", 5000)),
            max_retries=int(extra.get("max_retries", 5)),
            backoff=float(extra.get("backoff", 1.0)),
            infobase=str(extra.get("infobase", self.onec_conn_id)),
        )

    def get_conn(self) -> ODataClient:
        if self._client is None:
            self._client = ODataClient(self.config())
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> ODataClient:
        return self.get_conn()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": [],
            "relabeling": {"schema": "Scheme (http/https)", "login": "1C user"},
            "placeholders": {"extra": '{"base_path": "/trade/odata/standard.odata", "timeout": 60}'},
        }
