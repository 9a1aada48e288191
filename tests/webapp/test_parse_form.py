"""The ``parse`` node's palette entry and form, generated from what its type says."""

from __future__ import annotations

import pytest

from tests.webapp.test_adding_a_node_type import client_for, payload
from webapp.flows import services


@pytest.fixture
def flow(alice):
    return services.create(alice, "Parsing", services.starter_graph("Parsing"))


def edit(user, flow, **fields: str) -> str:
    body = {"type": "parse", "node_id": "parse1", "form_key": "k1", **fields}
    return client_for(user).post(f"/flows/{flow.pk}/node-form/", body).content.decode()


def test_the_palette_offers_parse_in_the_text_colour_starting_in_json_mode(alice, flow):
    response = client_for(alice).get(f"/flows/{flow.pk}/")
    assert 'data-testid="palette-parse"' in response.content.decode()
    data = response.context["editor_data"]
    assert data["palette"]["parse"]["config"] == {"mode": "json"}
    ports = data["palette"]["parse"]["ports"]
    assert (ports["inputs"], ports["outputs"]) == (["text"], ["value"])
    assert data["categories"]["parse"] == "text"


def test_its_form_reads_tags_one_per_line_and_a_pattern_as_typed(alice, flow):
    html = edit(alice, flow, f_mode="xml", f_tags="analysis\n task \n", f_matches="all")
    assert payload(html)["valid"] is True
    assert payload(html)["config"] == {
        "mode": "xml",
        "tags": ["analysis", "task"],
        "matches": "all",
    }
    pattern = r"(?P<name>\w+):\s+(?P<n>\d+)"
    html = edit(alice, flow, f_mode="regex", f_pattern=pattern, f_matches="first")
    assert payload(html)["config"] == {"mode": "regex", "pattern": pattern}  # first: the default


def test_its_form_puts_each_problem_on_its_field(alice, flow):
    html = edit(alice, flow, f_mode="regex")
    assert 'data-testid="error-pattern">regex mode needs a pattern' in html
    assert payload(html)["valid"] is False
    html = edit(alice, flow, f_mode="regex", f_pattern="(?P<a>x)(?=y)")
    assert 'data-testid="error-pattern">' in html
    assert "lookahead (?=...) is not supported, because patterns are matched without" in html
    html = edit(alice, flow, f_mode="xml", f_tags="a b")
    assert 'data-testid="error-tags">' in html and "must be a name such as task" in html
