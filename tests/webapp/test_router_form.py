"""A router's form: rules and conditions edited as rows, stored exactly as typed, and only
the fields its mode uses shown."""

from __future__ import annotations

import html as html_lib
import json
import re
from pathlib import Path

import pytest
from django.http import QueryDict
from django.test import Client

from graphs.nodes import NODE_TYPES
from webapp.flows import forms, services

ROUTER = NODE_TYPES["router"]
EXAMPLES = Path(__file__).parents[2] / "examples"
PATTERN = r"(?i)\bcode\b"  # as a person types it: two backslashes, no backspace


@pytest.fixture
def flow(alice):
    doc = json.loads((EXAMPLES / "router.json").read_text())
    return services.create(alice, "Router", doc)


def query(data: dict[str, str | list[str]]) -> QueryDict:
    posted = QueryDict(mutable=True)
    for key, value in data.items():
        posted.setlist(key, value if isinstance(value, list) else [value])
    return posted


def edit(user, flow, **fields: str | list[str]) -> tuple[str, dict]:
    client = Client()
    client.force_login(user)
    body = {"type": "router", "node_id": "route", "form_key": "k1", **fields}
    html = client.post(f"/flows/{flow.pk}/node-form/", body).content.decode()
    return html, json.loads(html.split('<script type="application/json">')[1].split("</script>")[0])


def open_form(user, flow, config: dict) -> str:
    client = Client()
    client.force_login(user)
    body = {"type": "router", "node_id": "route", "config": json.dumps(config)}
    return client.post(f"/flows/{flow.pk}/node-form/", body).content.decode()


def test_a_pattern_typed_with_backslashes_is_read_exactly_as_typed():
    # The JSON textarea this replaces read "\b" as JSON's backspace: "(?i)\x08code\x08".
    posted = query(
        {
            "f_routes": "code\ndocs",
            "f_rules": "rows",
            "f_rules.route": ["code", "docs"],
            "f_rules.pattern": [PATTERN, r"\d+\s*$"],
        }
    )
    config, errors, keep = forms.read_form(ROUTER, posted)
    assert errors == {} and keep == []
    assert config["rules"] == [
        {"route": "code", "pattern": PATTERN},
        {"route": "docs", "pattern": r"\d+\s*$"},
    ]
    assert "\x08" not in json.dumps(config)
    assert forms.check(ROUTER, config).config["rules"][0]["pattern"] == PATTERN


def test_blank_rows_are_dropped_and_rows_keep_their_order():
    posted = query(
        {
            "f_routes": "a\nb",
            "f_mode": "condition",
            "f_conditions": "rows",
            "f_conditions.route": ["b", "", "a"],
            "f_conditions.expression": ["score > 3", "  ", 'verdict == "PASS"'],
        }
    )
    config, _, _ = forms.read_form(ROUTER, posted)
    assert config["conditions"] == [
        {"route": "b", "expression": "score > 3"},
        {"route": "a", "expression": 'verdict == "PASS"'},
    ]


def test_columns_of_different_lengths_are_unreadable_and_the_node_keeps_its_rules():
    posted = query(
        {"f_routes": "a", "f_rules": "rows", "f_rules.route": ["a", "a"], "f_rules.pattern": "x"}
    )
    _, errors, keep = forms.read_form(ROUTER, posted)
    assert errors == {"rules": "every row needs a value for each column"}
    assert keep == ["rules"]


def test_the_form_shows_rules_as_rows_holding_the_stored_pattern(alice, flow):
    config = {"routes": ["code", "docs"], "rules": [{"route": "code", "pattern": PATTERN}]}
    html = open_form(alice, flow, config)
    table = html.split('data-testid="rows-rules"')[1].split("</table>")[0]
    assert re.findall(r'<th scope="col">([^<]+)</th>', table) == ["Route", "Pattern (regex)"]
    inputs = re.findall(r'name="(f_rules\.\w+)" value="([^"]*)"', table)
    assert [(n, html_lib.unescape(v)) for n, v in inputs] == [
        ("f_rules.route", "code"),
        ("f_rules.pattern", PATTERN),
    ]
    assert 'data-testid="add-row-rules"' in html
    assert "<template data-row-template>" in html


def test_what_the_form_shows_it_reads_back_unchanged(alice, flow):
    config = {
        "routes": ["pass", "fail"],
        "mode": "condition",
        "conditions": [{"route": "pass", "expression": 'value.score >= 7 and "\\\\" in note'}],
        "default": "fail",
    }
    table = open_form(alice, flow, config).split('data-testid="rows-conditions"')[1]
    fields = {
        name: html_lib.unescape(value)
        for name, value in re.findall(
            r'name="(f_conditions\.\w+)" value="([^"]*)"', table.split("</table>")[0]
        )
    }
    assert fields["f_conditions.expression"] == config["conditions"][0]["expression"]
    client = Client()
    client.force_login(alice)
    body = {
        "type": "router",
        "node_id": "route",
        "form_key": "k1",
        "f_routes": "pass\nfail",
        "f_mode": "condition",
        "f_default": "fail",
        "f_conditions": "rows",
        **fields,
    }
    answer = client.post(f"/flows/{flow.pk}/node-form/", body).content.decode()
    payload = json.loads(answer.split('<script type="application/json">')[1].split("</script>")[0])
    assert payload["valid"] is True
    assert payload["config"] == config


def test_an_expression_error_names_its_rule_and_route_under_conditions(alice, flow):
    html, payload = edit(
        alice,
        flow,
        f_routes="pass\nfail",
        f_mode="condition",
        f_default="fail",
        f_conditions="rows",
        **{"f_conditions.route": "pass", "f_conditions.expression": "score >"},
    )
    assert payload["valid"] is False
    assert (
        'data-testid="error-conditions">rule 1 (route &#x27;pass&#x27;): '
        "syntax error: unexpected end of the expression" in html
    )
    # Kept as typed, so the person can fix it.
    assert payload["config"]["conditions"] == [{"route": "pass", "expression": "score >"}]


@pytest.mark.parametrize(
    ("mode", "shown", "hidden"),
    [
        ("match", {"rules"}, {"conditions", "prompt", "system", "model", "thinking", "cache_ttl"}),
        (
            "condition",
            {"conditions"},
            {"rules", "prompt", "system", "model", "thinking", "cache_ttl"},
        ),
        ("llm", {"prompt", "system", "model", "thinking", "cache_ttl"}, {"rules", "conditions"}),
    ],
)
def test_only_the_fields_the_chosen_mode_uses_are_shown(alice, flow, mode, shown, hidden):
    html = open_form(alice, flow, {"routes": ["a"], "mode": mode, "default": "a"})
    off = set(re.findall(r'class="[^"]*\bnf-off\b[^"]*" data-field="(\w+)"', html))
    # The thinking budget follows the thinking field (off here), not the mode.
    assert "thinking_budget" in off
    off.discard("thinking_budget")
    assert off == hidden
    assert not shown & off
    for name in shown | hidden:
        # Each says which mode it belongs to, so the page can follow a change of mode.
        assert re.search(rf'data-field="{name}" data-when-field="f_mode" data-when-values="', html)
    assert 'data-field="routes" data-when' not in html  # every mode has routes


def test_a_hidden_field_with_an_error_is_still_in_the_form(alice, flow):
    config = {"routes": ["a"], "mode": "llm", "rules": [{"route": "zz", "pattern": "x"}]}
    html = open_form(alice, flow, config)
    assert re.search(r'class="[^"]*\bnf-off\b[^"]*" data-field="rules"', html)
    # The stylesheet shows an off field that holds an error (.nf-off:not(:has(.error))).
    assert 'data-testid="error-rules">rule names route &#x27;zz&#x27;' in html


def test_the_canvas_ports_are_input_plus_what_the_conditions_read(alice):
    config = {
        "routes": ["pass", "fail"],
        "mode": "condition",
        "conditions": [{"route": "pass", "expression": 'verdict == "PASS" and score >= 7'}],
        "default": "fail",
    }
    body = ports(alice, config)
    assert body["known"] is True
    assert sorted(body["inputs"]) == ["input", "score", "verdict"]
    assert body["outputs"] == ["pass", "fail"]
    # Half typed, the expression tells no ports yet: the canvas keeps those it had.
    config["conditions"][0]["expression"] = 'verdict == "PASS" and score >='
    assert ports(alice, config)["known"] is False


def ports(user, config: dict) -> dict:
    client = Client()
    client.force_login(user)
    body = json.dumps({"type": "router", "config": config})
    return client.post("/api/editor/ports", body, content_type="application/json").json()
