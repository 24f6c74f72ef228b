"""Test session set-up: an isolated Airflow home (SQLite) configured before Airflow loads."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_HOME = Path(tempfile.mkdtemp(prefix="receivables-airflow-"))

# Airflow reads these at import time: set them before anything imports airflow.
os.environ.update({
    "AIRFLOW_HOME": str(_HOME),
    "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
    "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_HOME / 'airflow.db'}",
    "GX_ANALYTICS_ENABLED": "False",
    "RECEIVABLES_DATA_DIR": str(_HOME / "receivables"),
})
os.environ.pop("RECEIVABLES_POLICY", None)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """`airflow db migrate` once per session, in a subprocess (as an operator would)."""
    airflow = Path(sys.executable).parent / "airflow"
    result = subprocess.run([str(airflow), "db", "migrate"], capture_output=True, text=True, env=os.environ)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    from airflow import settings

    settings.configure_orm()
    return _HOME
