"""The validation gate: Great Expectations 1.x on the extract and on the aging frame.

Fails closed: a run whose data breaks any expectation contacts nobody. Cross-frame
rules (references resolving, stages summing to the order, paid within the amount) are
computed with pandas into check columns and asserted with GX, so every rule appears in
the one GX result that is saved beside the run. GX is imported here, never at DAG
parse time (it costs seconds).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from receivables.domain.frames import RunningKeys, frame_keys, member, release_memory, with_keys
from receivables.onec.schema import EMAIL_CONTACT, SETTLEMENT_PROCEDURES

EMAIL_REGEX = r"^[^@\s<>(),;:\"\[\]\\]+@[^@\s<>(),;:\"\[\]\\]+\.[^@\s<>(),;:\"\[\]\\]+$"
EARLIEST = pd.Timestamp("2000-01-01")
#: the frames and columns `validate_extract` reads, the integer keys of references included (the
#: extract's frames carry them): the validate task loads these only
EXTRACT_READS: dict[str, tuple[str, ...]] = {
    "orders": ("document_ref", "document_key", "document_number", "document_date", "partner_ref", "contract_ref",
               "manager_ref", "organization_ref", "settlement", "settlement_key", "amount"),
    "stages": ("document_ref", "document_key", "line", "pay_date", "amount"),
    "payments": ("payment_ref", "payment_key", "line", "payment_date", "settlement_key", "amount"),
    "settlement_objects": ("settlement_key", "object_key"),
    "partners": ("partner_ref",),
    "contracts": ("contract_ref",),
    "managers": ("manager_ref",),
    "organizations": ("organization_ref",),
    "contacts": ("partner_ref", "type", "email"),
}
DEFAULT_BUCKETS = ["not_due", "1-30", "31-60", "61-90", "91+"]


@dataclass
class Failure:
    frame: str
    expectation: str
    column: str
    failing: int
    examples: list[Any]
    explanation: str

    def line(self) -> str:
        ex = ", ".join(str(e) for e in self.examples[:5])
        return (f"FAILED {self.frame}.{self.column}: {self.explanation} "
                f"[{self.expectation}] on {self.failing} row(s); e.g. {ex}")


@dataclass
class ValidationReport:
    checks: int = 0
    failures: list[Failure] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return not self.failures

    def summary_text(self) -> str:
        if self.success:
            return f"all {self.checks} expectations passed"
        head = f"{len(self.failures)} of {self.checks} expectations failed:"
        return "\n".join([head, *(f"  {f.line()}" for f in self.failures)])

    def to_dict(self) -> dict[str, Any]:
        return {"success": self.success, "checks": self.checks,
                "failures": [f.__dict__ for f in self.failures], "results": self.results}

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=1, default=str),
                              encoding="utf-8")


@dataclass(frozen=True)
class Check:
    """One expectation on one column of a (possibly computed) frame, or on several columns
    together (a tuple: GX's compound expectations, given them as ``column_list``)."""

    frame: str
    #: the column(s) whose values identify failing rows in examples; several are shown joined
    #: by "#" (a receipt's reference and line: "<ref>#2"), read by GX for the failing rows only
    key: str | tuple[str, ...]
    expectation: str  # GX class name
    column: str | tuple[str, ...]
    explanation: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def keys(self) -> list[str]:
        return list(self.key) if isinstance(self.key, tuple) else [self.key]

    @property
    def columns(self) -> list[str]:
        return list(self.column) if isinstance(self.column, tuple) else [self.column]

    def example(self, row: Any) -> Any:
        """A failing row's identification from GX's unexpected index entry (a dict by key column)."""
        if not isinstance(row, dict):
            return row
        if isinstance(self.key, tuple):
            return "#".join(str(row.get(k)) for k in self.key)
        return row.get(self.key)


def _context():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.execution_engine import pandas_execution_engine

    # GX fingerprints every pandas batch below this many bytes (an md5 of pandas' hash of every
    # row) for a batch marker nothing here reads: at a million open documents that hashing was
    # 9.7 of the gate's 16 s and its peak memory (text columns hashed value by value). Its own
    # threshold, which already skips frames over 1 GB, turns it off
    pandas_execution_engine.HASH_THRESHOLD = 0
    ctx = gx.get_context(mode="ephemeral")
    try:
        from great_expectations.data_context.types.base import ProgressBarsConfig

        ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    except Exception:  # noqa: BLE001 - cosmetic only
        pass
    return gx, ctx


def run_checks(frames: Mapping[str, pd.DataFrame], checks: list[Check]) -> ValidationReport:
    """Validate each frame with a GX suite built from `checks`; collect readable failures."""
    gx, ctx = _context()
    report = ValidationReport()
    by_frame: dict[str, list[Check]] = {}
    for c in checks:
        by_frame.setdefault(c.frame, []).append(c)
    for name, frame_checks in by_frame.items():
        named = frame_checks[0]  # a frame's checks name its rows by the same key
        df = _for_gx(frames[name], [*named.keys, *(col for c in frame_checks for col in c.columns)])
        # a data source per frame, deleted once its suite ran: GX's execution engine keeps every batch
        # it was given (each frame's converted columns: +0.3 GB over the extract's frames at a million
        # open documents)
        source = ctx.data_sources.add_pandas(f"receivables_{name}")
        batch = source.add_dataframe_asset(name=name).add_batch_definition_whole_dataframe("all")
        suite = ctx.suites.add(gx.ExpectationSuite(name=name))
        for c in frame_checks:
            on = {"column_list": c.columns} if isinstance(c.column, tuple) else {"column": c.column}
            suite.add_expectation(getattr(gx.expectations, c.expectation)(**on, **c.kwargs))
        definition = ctx.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
        result = definition.run(batch_parameters={"dataframe": df}, result_format={
            "result_format": "SUMMARY", "unexpected_index_column_names": named.keys, "partial_unexpected_count": 5})
        report.checks += len(frame_checks)
        for check, r in zip(frame_checks, result.results, strict=True):
            report.results.append({"frame": name, **r.to_json_dict()})
            if r.success:
                continue
            res = r.result or {}
            failing = res.get("unexpected_count")
            raised = (r.exception_info or {}).get("raised_exception")
            if raised:
                failing, examples = len(df), [(r.exception_info or {}).get("exception_message")]
            else:
                idx = res.get("partial_unexpected_index_list") or []
                examples = [named.example(row) for row in idx][:5]
                if not examples:
                    examples = list(res.get("partial_unexpected_list") or [])[:5]
            report.failures.append(Failure(name, r.expectation_config.type, ", ".join(check.columns),
                                           int(failing or 0), examples, check.explanation))
        ctx.validation_definitions.delete(name)
        ctx.data_sources.delete(source.name)
        del result, definition, batch, source, df
        release_memory()  # the frame's conversions and GX's work, before the next frame's
    return report


def _key_count(*keys: np.ndarray) -> int:
    """How many keys of one numbering the arrays can name (0 .. the largest; -1 is none)."""
    return int(max(k.max(initial=-1) for k in keys)) + 1


def _sums(keys: np.ndarray, amounts: pd.Series, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(per key 0..size-1: the sum of the amounts present, as float64, exact for kopecks below
    2**53; whether any amount was present) — a groupby-sum with min_count=1; key -1 is none."""
    present = (keys >= 0) & amounts.notna().to_numpy()
    values = amounts.to_numpy(dtype="float64", na_value=0.0)
    total = np.bincount(keys[present], weights=values[present], minlength=size)
    counted = np.bincount(keys[present], minlength=size) > 0
    return total, counted


def _settled_by_itself(settle_key: np.ndarray, order_key: np.ndarray, object_settlement: np.ndarray,
                       object_key: np.ndarray) -> np.ndarray:
    """Per order (its settlement object's key, its own document key): whether some settlement
    object with that key has the order as its object. Keys of one numbering each, -1 none.
    The object of each settlement key is looked up in an array indexed by the key; only where
    a key is repeated with different objects (a broken catalog) are (settlement, object) pairs
    compared, for those orders alone."""
    valid = (object_key >= 0) & (object_settlement >= 0)
    settlements, objects_of = object_settlement[valid], object_key[valid]
    size = _key_count(settle_key, settlements) + 1  # the last entry: key -1, no object
    object_of = np.full(size, -1, dtype=np.int64)
    object_of[settlements] = objects_of
    out = (settle_key >= 0) & (order_key >= 0) & (object_of[settle_key] == order_key)
    repeated = np.flatnonzero(np.bincount(settlements, minlength=size) > 1)
    if len(repeated):
        rows = np.flatnonzero(np.isin(settle_key, repeated))
        mine = np.isin(settlements, repeated)
        base = _key_count(order_key, objects_of) + 1
        pairs = np.unique(settlements[mine] * base + objects_of[mine])
        out[rows] = (order_key[rows] >= 0) & np.isin(settle_key[rows] * base + order_key[rows], pairs)
    return out


def _for_gx(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The columns a suite reads, in dtypes GX's pandas engine compares whole columns of.

    GX hashes every column of a batch, and its between-check calls a Python function per
    value unless the column is numpy int/float or datetime64[ns] (100k open documents: 5.4 s
    of the gate). Nullable integers (kopecks) become int64, or float64 when some are missing
    (exact below 2**53, missing as NaN, still null to GX); dates become datetime64[ns] when
    every one fits in its range (the absurd years the gate exists to catch keep the slow,
    exact path)."""
    out = {}
    for col in dict.fromkeys(columns):
        s = df[col]
        if isinstance(s.dtype, pd.Int64Dtype):
            s = s.astype("float64" if s.isna().any() else "int64")
        elif pd.api.types.is_datetime64_dtype(s.dtype) and s.dtype != "datetime64[ns]":
            lo, hi = s.min(), s.max()
            if pd.isna(lo) or (pd.Timestamp.min <= lo and hi <= pd.Timestamp.max):
                s = s.astype("datetime64[ns]")
        out[col] = s
    return pd.DataFrame(out, index=df.index)


def _identity(keys: np.ndarray) -> np.ndarray:
    """A reference's integer keys as GX checks them: equal text, equal number; a missing reference
    (key -1) missing, as GX skips missing text (float64: exact below 2**53)."""
    return np.where(keys >= 0, keys, np.nan)


def _flag(df: pd.DataFrame, key: str, column: str, good: pd.Series) -> pd.DataFrame:
    # the key column as it is (text stays Arrow: `to_numpy` made a Python string per row, ~0.2 GB
    # per such frame at a million documents)
    return pd.DataFrame({key: df[key].reset_index(drop=True), column: good.fillna(False).astype(bool).to_numpy()})


def _is_true(frame: str, key: str, column: str, explanation: str) -> Check:
    return Check(frame, key, "ExpectColumnValuesToBeInSet", column, explanation, {"value_set": [True]})


def validate_extract(frames: Mapping[str, pd.DataFrame], *, as_of: dt.date) -> ValidationReport:
    """The gate on the extract (canonical frames as of the run's date)."""
    return run_checks(*extract_checks(frames, as_of=as_of))


def extract_checks(frames: Mapping[str, pd.DataFrame], *, as_of: dt.date
                   ) -> tuple[dict[str, pd.DataFrame], list[Check]]:
    """The frames GX checks on the extract (the canonical ones and the cross-frame rules'
    flag columns computed here) and the checks."""
    horizon = pd.Timestamp(as_of) + pd.Timedelta(days=31)
    orders, stages, payments = frames["orders"], frames["stages"], frames["payments"]
    keyed = with_keys(frames)
    # references are checked unique on their integer keys (`_identity`): GX's duplicate search on
    # the text made a Python string of every GUID (at a million open documents +0.3 GB and 0.9 s
    # for the orders, +0.47 GB and 1.3 s for the receipts' lines, the gate's peak)
    orders = orders.assign(document_key=_identity(keyed["orders"]["document_key"].to_numpy()))
    payment_keys = frame_keys(payments, "payment_ref")
    if payment_keys is None:  # frames not made by normalise: numbered here
        payment_keys = RunningKeys(len(payments)).add(payments["payment_ref"])
    data: dict[str, pd.DataFrame] = {"orders": orders, "payments": payments,
                                     "partners": frames["partners"], "contracts": frames["contracts"],
                                     "managers": frames["managers"], "organizations": frames["organizations"]}
    checks = [
        Check("orders", "document_number", "ExpectColumnValuesToNotBeNull", "document_ref", "order without Ref_Key"),
        Check("orders", "document_number", "ExpectColumnValuesToBeUnique", "document_key", "Ref_Key repeated"),
        Check("orders", "document_number", "ExpectColumnValuesToNotBeNull", "document_number", "order without Number"),
        Check("orders", "document_number", "ExpectColumnValuesToNotBeNull", "partner_ref", "order without partner"),
        Check("orders", "document_number", "ExpectColumnValuesToNotBeNull", "amount", "amount missing or not a number"),
        Check("orders", "document_number", "ExpectColumnValuesToBeBetween", "amount", "negative amount", {"min_value": 0}),
        Check("orders", "document_number", "ExpectColumnValuesToNotBeNull", "document_date", "order without date"),
        Check("orders", "document_number", "ExpectColumnValuesToBeBetween", "document_date",
              "date outside 2000-01-01 … as-of + 31 days", {"min_value": EARLIEST, "max_value": horizon}),
        Check("orders", "document_number", "ExpectColumnValuesToBeInSet", "settlement",
              "unknown ПорядокРасчетов", {"value_set": list(SETTLEMENT_PROCEDURES), "mostly": 1.0}),
        Check("payments", "payment_ref", "ExpectColumnValuesToNotBeNull", "amount", "payment amount missing"),
        Check("payments", "payment_ref", "ExpectColumnValuesToBeBetween", "amount", "negative payment line",
              {"min_value": 0}),
        Check("payments", "payment_ref", "ExpectColumnValuesToBeBetween", "payment_date",
              "date outside 2000-01-01 … as-of + 31 days", {"min_value": EARLIEST, "max_value": horizon}),
        Check("partners", "partner_ref", "ExpectColumnValuesToBeUnique", "partner_ref", "partner Ref_Key repeated"),
        Check("partners", "partner_ref", "ExpectColumnValuesToNotBeNull", "partner_ref", "partner without Ref_Key"),
        Check("contracts", "contract_ref", "ExpectColumnValuesToBeUnique", "contract_ref", "contract Ref_Key repeated"),
        Check("managers", "manager_ref", "ExpectColumnValuesToBeUnique", "manager_ref", "user Ref_Key repeated"),
        Check("organizations", "organization_ref", "ExpectColumnValuesToBeUnique", "organization_ref",
              "organization Ref_Key repeated"),
    ]
    # payment lines: (receipt, line) identifies a row. Rows are named by the two columns, shown
    # "<ref>#<line>": text joined for every row was ~0.1 GB per frame at a million open documents
    line_key = ("payment_ref", "line")
    data["payment_lines"] = payments.assign(payment_key=_identity(payment_keys))
    checks.append(Check("payment_lines", line_key, "ExpectCompoundColumnsToBeUnique", ("payment_key", "line"),
                        "payment line repeated"))
    # stages: each amount ≥ 0, dates sane, and together exactly the order amount
    data["stages"] = stages
    stage_line = ("document_ref", "line")
    checks += [
        Check("stages", stage_line, "ExpectColumnValuesToNotBeNull", "amount", "stage amount missing"),
        Check("stages", stage_line, "ExpectColumnValuesToBeBetween", "amount", "negative stage amount",
              {"min_value": 0}),
        Check("stages", stage_line, "ExpectColumnValuesToBeBetween", "pay_date",
              "stage date outside 2000-01-01 … as-of + 3 years",
              {"min_value": EARLIEST, "max_value": pd.Timestamp(as_of) + pd.Timedelta(days=3 * 366)}),
    ]
    # cross-frame sums and joins on the integer keys of references (frames.with_keys; the
    # extract's frames carry them): grouping and merging GUID text took seconds per million.
    # Each rule flags every order (one it does not apply to passes), named by the orders' own
    # numbers: the rows it applies to, taken out, copied their numbers' text
    order_key = keyed["orders"]["document_key"].to_numpy()
    stage_key = keyed["stages"]["document_key"].to_numpy()
    amount = orders["amount"].to_numpy(dtype="float64", na_value=np.nan)
    total, has_total = _sums(stage_key, stages["amount"], _key_count(order_key, stage_key))
    total, has_total = np.append(total, 0.0), np.append(has_total, False)  # last entry: key -1
    has_stages = np.zeros(len(has_total), dtype=bool)  # an order without a reference has none
    has_stages[stage_key[stage_key >= 0]] = True
    data["stage_totals"] = _flag(orders, "document_number", "stages_sum_to_amount", pd.Series(
        ~has_stages[order_key] | (has_total[order_key] & (amount == total[order_key]))))
    checks.append(_is_true("stage_totals", "document_number", "stages_sum_to_amount",
                           "payment schedule stages do not sum to the order amount"))
    # an order settled by itself (its settlement object's object is the order) cannot have
    # received more than its amount
    objects = keyed["settlement_objects"]
    object_key, object_settlement = objects["object_key"].to_numpy(), objects["settlement_key"].to_numpy()
    settle_key = keyed["orders"]["settlement_key"].to_numpy()
    self_settled = _settled_by_itself(settle_key, order_key, object_settlement, object_key)
    pay_key = keyed["payments"]["settlement_key"].to_numpy()
    paid, _ = _sums(pay_key, payments["amount"], _key_count(pay_key, settle_key))
    received = np.append(paid, 0)[settle_key]  # key -1: the last entry, nothing received
    data["order_payments"] = _flag(orders, "document_number", "payments_within_amount",
                                   pd.Series(~self_settled | (received <= amount)))
    checks.append(_is_true("order_payments", "document_number", "payments_within_amount",
                           "payments received exceed the order amount"))
    # references resolve
    refs = pd.DataFrame({"document_number": orders["document_number"].reset_index(drop=True)})
    for col, frame, key, what in (("partner_ref", "partners", "partner_ref", "partner"),
                                  ("contract_ref", "contracts", "contract_ref", "contract"),
                                  ("manager_ref", "managers", "manager_ref", "manager (user)"),
                                  ("organization_ref", "organizations", "organization_ref", "organization")):
        known = set(frames[frame][key].dropna())
        found = member(orders[col], known)
        ok = (orders[col].isna().to_numpy() | found) if col != "partner_ref" else found
        refs[f"{col}_resolves"] = ok
        checks.append(_is_true("order_refs", "document_number", f"{col}_resolves",
                               f"order's {what} is not among the extracted {frame}"))
    data["order_refs"] = refs
    # email addresses well-formed where present
    c = frames["contacts"]
    emails = c.loc[c["type"].eq(EMAIL_CONTACT) & c["email"].notna() & c["email"].ne("")]
    data["emails"] = pd.DataFrame({"partner_ref": emails["partner_ref"].to_numpy(),
                                   "email": emails["email"].astype("str").to_numpy()})
    checks.append(Check("emails", "partner_ref", "ExpectColumnValuesToMatchRegex", "email",
                        "not a well-formed email address", {"regex": EMAIL_REGEX}))
    return data, checks


def validate_aging(aging: pd.DataFrame, *, as_of: dt.date, buckets: list[str] | None = None) -> ValidationReport:
    """The gate on computed aging: unique, paid within amount, outstanding consistent."""
    k = "document_number"
    as_of_ts = pd.Timestamp(as_of)
    computed = pd.DataFrame({
        k: aging[k].reset_index(drop=True),
        "paid_within_amount": ((aging["paid"] >= 0) & (aging["paid"] <= aging["amount"])).to_numpy(),
        "outstanding_is_amount_minus_paid": (aging["outstanding"] == aging["amount"] - aging["paid"]).to_numpy(),
        "days_overdue_matches_due_date": ((as_of_ts - aging["due_date"]).dt.days == aging["days_overdue"]).to_numpy(),
    })
    checks = [
        Check("aging", k, "ExpectColumnValuesToBeUnique", "document_ref", "document appears twice in the snapshot"),
        Check("aging", k, "ExpectColumnValuesToBeBetween", "outstanding", "outstanding not positive",
              {"min_value": 1}),
        Check("aging", k, "ExpectColumnValuesToBeInSet", "bucket", "unknown aging bucket",
              {"value_set": list(buckets or DEFAULT_BUCKETS)}),
        Check("aging", k, "ExpectColumnValuesToNotBeNull", "due_date", "no due date"),
        _is_true("aging_rules", k, "paid_within_amount",
                 "payments exceed the order amount (or are negative)"),
        _is_true("aging_rules", k, "outstanding_is_amount_minus_paid", "outstanding ≠ amount − paid"),
        _is_true("aging_rules", k, "days_overdue_matches_due_date", "days_overdue ≠ as-of − due date"),
    ]
    return run_checks({"aging": aging, "aging_rules": computed}, checks)


Validator = Callable[..., ValidationReport]
