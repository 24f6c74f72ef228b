"""Where the project's files live; every path can be overridden by an environment variable."""

from __future__ import annotations

import os
from pathlib import Path

#: the repository root (plugins/receivables/settings.py -> ../../)
PROJECT_ROOT = Path(os.environ.get("RECEIVABLES_HOME", Path(__file__).resolve().parents[2]))


def policy_path() -> Path:
    return Path(os.environ.get("RECEIVABLES_POLICY", PROJECT_ROOT / "include" / "policy.yaml"))


def templates_dir() -> Path:
    return Path(os.environ.get("RECEIVABLES_TEMPLATES", PROJECT_ROOT / "include" / "templates"))


def data_dir() -> Path:
    """Run artefacts (extract Parquet, validation results, reports)."""
    default = Path(os.environ.get("AIRFLOW_HOME", PROJECT_ROOT / ".airflow")) / "receivables"
    return Path(os.environ.get("RECEIVABLES_DATA_DIR", default))


def key_rates_path() -> Path:
    return Path(os.environ.get("RECEIVABLES_KEY_RATES", PROJECT_ROOT / "include" / "data" / "cbr_key_rate.csv"))
