"""Any input ends in a parsed result or a clear error, never an unhandled exception:
the OData answer parser, the $metadata parser, normalisation and the policy loader."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from receivables.domain.normalise import normalise
from receivables.domain.policy import PolicyError, parse_policy
from receivables.onec.client import ODataClient, ODataConfig, ODataError, parse_metadata
from receivables.onec.schema import READ_SETS

CLIENT = ODataClient(ODataConfig(base_url="http://127.0.0.1:9/x"))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=150, deadline=None)
@given(body=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_odata_answer_parser_returns_a_dict_or_a_clear_error(body):
    resp = SimpleNamespace(content=body, status_code=200)
    try:
        doc = CLIENT._json(resp, "GET X")
    except ODataError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("1C OData")
    else:
        assert isinstance(doc, dict)


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_metadata_parser_returns_sets_or_a_clear_error(body):
    try:
        assert isinstance(parse_metadata(body), dict)
    except ODataError as exc:
        assert "$metadata" in str(exc)


row_value = st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=True) | st.text(max_size=12)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_normalise_survives_any_field_values(data):
    raw = {}
    for name, fields in READ_SETS.items():
        rows = data.draw(st.lists(st.fixed_dictionaries({f: row_value for f in fields}), max_size=3))
        raw[name] = rows
    frames = normalise(raw)
    assert set(frames) >= {"orders", "payments", "partners"}


policy_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10) | st.dates().map(str),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["campaign_start", "pools", "name", "rank", "steps", "id", "action", "anchor", "offset",
                         "unit", "template", "quiet_days", "timezone", "assignee", "match", "exclude", "x"]),
        inner, max_size=5),
    max_leaves=25)


@settings(max_examples=200, deadline=None)
@given(raw=policy_like)
def test_policy_loader_returns_a_policy_or_one_clear_error(raw):
    try:
        parse_policy(raw, source="fuzz.yaml")
    except PolicyError as exc:
        assert str(exc).startswith("policy file fuzz.yaml")


def test_a_valid_policy_still_parses():
    pol = parse_policy({"campaign_start": "2026-11-01", "pools": [{"name": "p", "rank": 1, "steps": [
        {"id": "s", "action": "email", "anchor": "due_date", "offset": 1, "template": "t"}]}]})
    assert pol.pools[0].steps[0].id == "s"


@pytest.mark.parametrize("body", [b"", b"null", b"[1]", b'{"odata.error": 5}', b"\xff\xfe"])
def test_known_bad_answers(body):
    with pytest.raises(ODataError):
        CLIENT._json(SimpleNamespace(content=body, status_code=200), "GET X")


def test_credentials_in_urls_are_redacted_from_messages():
    from receivables.onec.client import redact

    msg = "HTTPConnectionPool(host='1c'): Max retries exceeded with url http://Админ:s3cret@1c.local:80/trade/odata"
    assert "s3cret" not in redact(msg) and "http://***@1c.local:80/trade/odata" in redact(msg)
    assert redact("smtp://robot:pw@mail.example:25 and https://plain.example/x") == \
        "smtp://***@mail.example:25 and https://plain.example/x"
