"""The collection policy: who gets what, when (spec §5), loaded into typed models.

A wrong key, type or value is one :class:`PolicyError` naming the file, the key path and
the problem, raised before any data is read.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from receivables.onec.schema import SETTLEMENT_PROCEDURES

Settlement = Literal[
    "ПоДоговорамКонтрагентов", "ПоЗаказам", "ПоДоговорамНакладным", "ПоЗаказамНакладным", "ПоНакладным"
]
assert set(Settlement.__args__) == set(SETTLEMENT_PROCEDURES)  # type: ignore[attr-defined]

ACTION_TEMPLATE_DIRS = {"email": "email", "task": "task", "case": "case"}
TEMPLATE_SUFFIXES = {"email": (".subject", ".html", ".txt"), "task": (".txt",), "case": (".txt",)}


class PolicyError(ValueError):
    """The policy file is wrong; the message names the file, the key and the problem."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Recipient(_Model):
    contact_type: str = "АдресЭлектроннойПочты"
    contact_kind: str | None = None
    pick: Literal["first"] = "first"


class Senders(_Model):
    default: str = "debt@example.ru"
    by_organization: dict[str, str] = Field(default_factory=dict)

    @field_validator("default")
    @classmethod
    def _address(cls, v: str) -> str:
        if "@" not in v or any(c in v for c in " \r\n"):
            raise ValueError(f"not an email address: {v!r}")
        return v

    def for_organization(self, name: str | None) -> str:
        return self.by_organization.get(name or "", self.default)


class PoolMatch(_Model):
    segments: list[str] = Field(default_factory=list)
    organizations: list[str] = Field(default_factory=list)
    settlement: list[Settlement] = Field(default_factory=lambda: ["ПоЗаказам", "ПоЗаказамНакладным"])


class PoolExclude(_Model):
    segments: list[str] = Field(default_factory=list)
    partner_debt_below: Decimal = Decimal(0)
    document_amount_below: Decimal = Decimal(0)


class Require(_Model):
    payment_percent: Decimal | None = None  # paid share at most this (0 = nothing paid)
    min_outstanding: Decimal | None = None  # rubles


class Step(_Model):
    id: str = Field(min_length=1)
    action: Literal["email", "task", "case"]
    anchor: Literal["document_date", "due_date"]
    offset: int
    unit: Literal["business_days", "calendar_days"] = "business_days"
    require: Require = Field(default_factory=Require)
    catch_up_days: int | None = Field(default=None, ge=0)
    template: str = Field(min_length=1)
    assignee: Literal["order_manager", "partner_manager"] | None = None
    deadline_business_days: int = Field(default=2, ge=0)

    @model_validator(mode="after")
    def _assignee(self) -> Step:
        if self.action == "task" and self.assignee is None:
            raise ValueError("a task step needs 'assignee' (order_manager or partner_manager)")
        return self


class Pool(_Model):
    name: str
    rank: int
    match: PoolMatch = Field(default_factory=PoolMatch)
    exclude: PoolExclude = Field(default_factory=PoolExclude)
    steps: list[Step] = Field(default_factory=list)


class ContactLimits(_Model):
    """230-ФЗ caps for private persons (ЧастноеЛицо)."""

    per_day: int = 2
    per_week: int = 4
    per_month: int = 16
    weekday_hours: tuple[int, int] = (8, 22)
    weekend_hours: tuple[int, int] = (9, 20)


class ClaimPolicy(_Model):
    """The claim letter (претензия) printed for debt cases."""

    method: Literal["cbr_395", "contract", "cbr_1_300"] = "cbr_395"
    rate_per_day: Decimal | None = None
    cap_percent: Decimal | None = None
    deadline_days: int = Field(default=10, ge=1)
    signatory: str = "Генеральный директор"
    signatory_name: str = ""
    addresses: dict[str, str] = Field(default_factory=dict)
    bank_details: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _contract(self) -> ClaimPolicy:
        if self.method == "contract" and self.rate_per_day is None:
            raise ValueError("method contract needs rate_per_day (percent of the debt a day)")
        return self


class Policy(_Model):
    timezone: str = "Europe/Moscow"
    calendar: Literal["RU"] = "RU"
    campaign_start: dt.date
    aging_buckets: list[int] = Field(default_factory=lambda: [30, 60, 90])
    quiet_days: int = Field(default=0, ge=0)
    debt_basis: Literal["document", "contract", "partner"] = "partner"
    case_target: Literal["Catalog_СделкиСКлиентами", "Document_CRM_Интерес"] = "Catalog_СделкиСКлиентами"
    recipient: Recipient = Field(default_factory=Recipient)
    senders: Senders = Field(default_factory=Senders)
    private_persons: ContactLimits = Field(default_factory=ContactLimits)
    claim: ClaimPolicy = Field(default_factory=ClaimPolicy)
    pools: list[Pool] = Field(min_length=1)
    #: the 1C infobases (Airflow connection ids) a run reads and acts on, each in parallel;
    #: the Airflow Variable ``receivables_infobases`` overrides this list without a policy edit
    infobases: list[str] = Field(default_factory=lambda: ["onec_default"])

    @field_validator("infobases")
    @classmethod
    def _infobases(cls, v: list[str]) -> list[str]:
        return check_infobases(v)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v

    @field_validator("aging_buckets")
    @classmethod
    def _buckets(cls, v: list[int]) -> list[int]:
        if not v or any(b <= 0 for b in v) or sorted(set(v)) != v:
            raise ValueError("must be a non-empty, strictly increasing list of positive day counts")
        return v

    @model_validator(mode="after")
    def _unique_steps(self) -> Policy:
        seen: dict[str, str] = {}
        for pool in self.pools:
            for step in pool.steps:
                if step.id in seen:
                    raise ValueError(
                        f"duplicate step id {step.id!r} (pools {seen[step.id]!r} and {pool.name!r}); "
                        "step ids key the register and must be unique"
                    )
                seen[step.id] = pool.name
        names = [p.name for p in self.pools]
        if len(set(names)) != len(names):
            raise ValueError("pool names must be unique")
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def bucket_labels(self) -> list[str]:
        labels = ["not_due"]
        lower = 1
        for upper in self.aging_buckets:
            labels.append(f"{lower}-{upper}")
            lower = upper + 1
        labels.append(f"{lower}+")
        return labels

    def steps(self) -> list[tuple[Pool, int, Step]]:
        """(pool, rank within the pool's ladder, step) in policy order."""
        return [(p, i, s) for p in self.pools for i, s in enumerate(p.steps)]


#: Airflow's limit on one mapped expansion (core.max_map_length)
MAX_INFOBASES = 1024
_CONN_ID = re.compile(r"^[A-Za-z0-9_.-]{1,250}$")


def infobase_label(conn_id: str) -> str:
    """The infobase's name in the warehouse and run folders: the connection id without
    its ``onec_`` prefix, so ``onec_default`` is ``default`` (the single-infobase name)."""
    return conn_id.removeprefix("onec_") or conn_id


def check_infobases(conn_ids: list[str]) -> list[str]:
    """A non-empty list of distinct Airflow connection ids with distinct labels."""
    if not conn_ids:
        raise ValueError("must name at least one 1C connection id, e.g. [onec_default]")
    if len(conn_ids) > MAX_INFOBASES:
        raise ValueError(f"at most {MAX_INFOBASES} infobases (Airflow's max_map_length), got {len(conn_ids)}")
    bad = [c for c in conn_ids if not isinstance(c, str) or not _CONN_ID.match(c)]
    if bad:
        raise ValueError(f"not Airflow connection ids (letters, digits, _ . -): {bad[:5]}")
    labels = [infobase_label(c) for c in conn_ids]
    if len(set(labels)) != len(labels):
        raise ValueError(f"infobases must be distinct (after dropping the onec_ prefix): {conn_ids}")
    return conn_ids


def _key_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def load_policy(path: str | Path, *, templates_dir: Path | None = None) -> Policy:
    """Read and validate a policy YAML; check that every template it names exists."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolicyError(f"policy file {path}: not found (set RECEIVABLES_POLICY)") from None
    except yaml.YAMLError as exc:
        raise PolicyError(f"policy file {path}: not valid YAML: {exc}") from None
    return parse_policy(raw, source=str(path), templates_dir=templates_dir)


def parse_policy(raw: object, *, source: str = "<policy>", templates_dir: Path | None = None) -> Policy:
    if not isinstance(raw, dict):
        raise PolicyError(f"policy file {source}: expected a mapping of keys, got {type(raw).__name__}")
    try:
        policy = Policy.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            problems.append(f"{_key_path(err['loc'])}: {msg}")
        raise PolicyError(f"policy file {source}: " + "; ".join(problems)) from None
    if templates_dir is not None:
        missing: dict[str, str] = {}
        for p_i, pool in enumerate(policy.pools):
            for s_i, step in enumerate(pool.steps):
                folder = templates_dir / ACTION_TEMPLATE_DIRS[step.action]
                absent = [f"{step.template}{suffix}" for suffix in TEMPLATE_SUFFIXES[step.action]
                          if not (folder / f"{step.template}{suffix}").is_file()]
                if absent:
                    missing.setdefault(f"{step.action}:{step.template}",
                                       f"pools[{p_i}].steps[{s_i}].template: {step.template!r} has no "
                                       f"{', '.join(absent)} in {folder}")
        if missing:
            raise PolicyError(f"policy file {source}: " + "; ".join(missing.values()))
    return policy
