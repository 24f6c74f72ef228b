"""Real parts for integration tests: a loopback SMTP server, connections, a DAG runner."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer


@dataclass
class CaughtMail:
    """Messages a loopback SMTP server accepted, parsed; failures can be injected by recipient."""

    messages: list = field(default_factory=list)
    fail_rcpt: dict[str, str] = field(default_factory=dict)  # address -> "451 ..." / "550 ..."
    fail_data_at: dict[int, str] = field(default_factory=dict)  # n-th DATA (1-based) -> reply
    drop_data_at: set[int] = field(default_factory=set)  # n-th DATA: close the connection, no reply
    connections: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _data_count: int = 0

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802
        with self._lock:
            self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        reply = self.fail_rcpt.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        with self._lock:
            self._data_count += 1
            reply = self.fail_data_at.pop(self._data_count, None)
            drop = self._data_count in self.drop_data_at
        if drop:
            server.transport.close()  # the client sees the connection vanish mid-DATA
            return "421 closing"
        if reply:
            return reply
        msg = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        with self._lock:
            self.messages.append(msg)
        return "250 OK"

    def by_message_id(self) -> dict[str, list]:
        out: dict[str, list] = {}
        for m in self.messages:
            out.setdefault(m["Message-ID"], []).append(m)
        return out


class SmtpServer:
    def __init__(self, handler: CaughtMail, **smtp_kwargs):
        self.handler = handler
        with socket.socket() as probe:  # aiosmtpd's readiness check cannot use port 0
            probe.bind(("127.0.0.1", 0))
            self._port = probe.getsockname()[1]
        self.controller = Controller(handler, hostname="127.0.0.1", port=self._port, **smtp_kwargs)

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()

    @property
    def port(self) -> int:
        return self._port


def connection_env(onec_url_port: int, smtp_port: int, warehouse: Path, *, user: str, password: str,
                   base_path: str = "/trade/odata/standard.odata") -> dict[str, str]:
    return {
        "AIRFLOW_CONN_ONEC_DEFAULT": json.dumps({
            "conn_type": "http", "host": "127.0.0.1", "port": onec_url_port, "schema": "http",
            "login": user, "password": password,
            "extra": {"base_path": base_path, "timeout": 10, "backoff": 0.01, "max_retries": 2}}),
        "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps({
            "conn_type": "smtp", "host": "127.0.0.1", "port": smtp_port,
            "extra": {"from_email": "debt@santeh-opt.example", "disable_tls": True, "disable_ssl": True,
                      "timeout": 10}}),
        "AIRFLOW_CONN_RECEIVABLES_DB": json.dumps({"conn_type": "sqlite", "host": str(warehouse)}),
    }


__all__ = ["CaughtMail", "SmtpServer", "SMTPServer", "connection_env"]
