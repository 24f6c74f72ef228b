"""The policy loader: the shipped policy loads; every mistake is one clear error."""

from __future__ import annotations

import pytest
import yaml

from receivables import settings
from receivables.domain.policy import PolicyError, load_policy, parse_policy

BASE = {"campaign_start": "2026-11-01",
        "pools": [{"name": "p", "rank": 1, "steps": [
            {"id": "s", "action": "email", "anchor": "document_date", "offset": 3, "template": "unpaid_order"}]}]}


def test_shipped_policy_loads_with_its_templates():
    pol = load_policy(settings.PROJECT_ROOT / "include" / "policy.yaml", templates_dir=settings.templates_dir())
    step = pol.pools[0].steps[0]
    assert (step.id, step.offset, step.unit, step.require.payment_percent) == ("unpaid_order", 3, "business_days", 0)


def test_commented_ladder_in_the_shipped_policy_is_valid_too():
    text = (settings.PROJECT_ROOT / "include" / "policy.yaml").read_text(encoding="utf-8")
    ladder = "\n".join(line[1:] for line in text.split("# The 1C:CRM debt ladder")[1].splitlines()[3:])
    raw = yaml.safe_load(text)
    raw["pools"].append(yaml.safe_load(ladder)[0])
    pol = parse_policy(raw, templates_dir=settings.templates_dir())
    assert [s.id for s in pol.pools[1].steps][-2:] == ["call_manager", "open_case"]


@pytest.mark.parametrize(("change", "message"), [
    (lambda r: r.update(colour="red"), "colour: unknown key"),
    (lambda r: r.update(quiet_days="often"), "quiet_days"),
    (lambda r: r["pools"][0]["steps"][0].update(action="sms"), "pools[0].steps[0].action"),
    (lambda r: r["pools"][0]["steps"].append(dict(r["pools"][0]["steps"][0])), "duplicate step id 's'"),
    (lambda r: r["pools"][0]["steps"].append({"id": "t", "action": "task", "anchor": "due_date", "offset": 1,
                                              "template": "call_manager"}), "needs 'assignee'"),
    (lambda r: r.update(timezone="Mars/Olympus"), "unknown time zone"),
    (lambda r: r.update(aging_buckets=[60, 30]), "aging_buckets"),
    (lambda r: r["pools"][0]["match"].update({"settlement": ["ПоДоговорам"]}) if "match" in r["pools"][0]
     else r["pools"][0].update(match={"settlement": ["ПоДоговорам"]}), "pools[0].match.settlement[0]"),
])
def test_wrong_policy_is_one_clear_error_naming_file_and_key(change, message):
    import copy

    raw = copy.deepcopy(BASE)
    change(raw)
    with pytest.raises(PolicyError) as err:
        parse_policy(raw, source="policy.yaml")
    assert "policy file policy.yaml" in str(err.value) and message in str(err.value)


def test_missing_template_is_named(tmp_path):
    raw = {**BASE, "pools": [{**BASE["pools"][0], "steps": [{**BASE["pools"][0]["steps"][0], "template": "nope"}]}]}
    with pytest.raises(PolicyError, match=r"'nope' has no nope\.subject, nope\.html, nope\.txt"):
        parse_policy(raw, templates_dir=settings.templates_dir())


def test_missing_or_broken_file(tmp_path):
    with pytest.raises(PolicyError, match="not found"):
        load_policy(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("pools: [\n", encoding="utf-8")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(bad)


@pytest.mark.parametrize(("infobases", "message"), [
    ([], "at least one 1C connection id"),
    (["onec_default", "onec_default"], "must be distinct"),
    (["onec_main", "main"], "must be distinct"),
    (["onec default"], "not Airflow connection ids"),
])
def test_infobases_must_be_distinct_connection_ids(infobases, message):
    with pytest.raises(PolicyError, match=message) as err:
        parse_policy({**BASE, "infobases": infobases}, templates_dir=settings.templates_dir())
    assert "infobases" in str(err.value)


def test_infobase_runs_keep_the_default_run_id_and_tag_the_others(tmp_path):
    import datetime as dt

    from receivables.pipeline import infobase_runs, parse_infobases

    assert parse_infobases(None) is None and parse_infobases(" ") is None
    assert parse_infobases('["onec_default", "onec_branch"]') == parse_infobases("onec_default, onec_branch")
    with pytest.raises(ValueError, match="receivables_infobases is not a JSON list"):
        parse_infobases('["onec_default",')
    with pytest.raises(ValueError, match="receivables_infobases: infobases must be distinct"):
        parse_infobases("onec_a,onec_a")
    runs = infobase_runs(dt.date(2026, 11, 20), "scheduled__x", "auto", tmp_path, ["onec_default", "onec_branch"])
    assert [(r.infobase, r.conn_id, r.run_id) for r in runs] == [
        ("default", "onec_default", "scheduled__x"), ("branch", "onec_branch", "scheduled__x__branch")]
    assert runs[0].folder != runs[1].folder
