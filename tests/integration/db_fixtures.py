"""Warehouse databases for tests: a SQLite file, or a throw-away PostgreSQL database.

PostgreSQL is the local server on 127.0.0.1:5432 (user postgres, trust auth); CI runs
it, so an unreachable server fails the test with a message saying so instead of
skipping it. ``RECEIVABLES_TEST_PG`` overrides the admin URL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

PG_ADMIN_URL = os.environ.get("RECEIVABLES_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


@contextmanager
def postgres_database() -> Iterator[str]:
    """Create ``receivables_test_<random>``, yield its URL, drop it (WITH (FORCE)) after."""
    name = f"receivables_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any failure here means "no server for this test"
        admin.dispose()
        pytest.fail(f"these tests need PostgreSQL at {make_url(PG_ADMIN_URL).render_as_string()} "
                    f"(user postgres, trust auth; CI provides it). Start it, or deselect with "
                    f"-m 'not postgres'. Error: {exc}", pytrace=False)
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def database(backend: str, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty warehouse database on `backend` (``sqlite`` or ``postgres``)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'warehouse.db'}"
    elif backend == "postgres":
        with postgres_database() as url:
            yield url
    else:
        raise ValueError(backend)


#: parametrise a fixture with this: SQLite, and PostgreSQL marked ``postgres``
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
