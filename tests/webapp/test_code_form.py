"""The ``code`` node's palette entry and form, generated from what its type says."""

from __future__ import annotations

import pytest

from tests.webapp.test_adding_a_node_type import client_for, payload
from webapp.flows import services


@pytest.fixture
def flow(alice):
    return services.create(alice, "Coding", services.starter_graph("Coding"))


def edit(user, flow, **fields: str) -> str:
    body = {"type": "code", "node_id": "code1", "form_key": "k1", **fields}
    return client_for(user).post(f"/flows/{flow.pk}/node-form/", body).content.decode()


def test_the_palette_offers_code_with_ports_from_its_default_main(alice, flow):
    response = client_for(alice).get(f"/flows/{flow.pk}/")
    assert 'data-testid="palette-code"' in response.content.decode()
    data = response.context["editor_data"]
    ports = data["palette"]["code"]["ports"]
    assert (ports["inputs"], sorted(ports["outputs"])) == (["text"], ["count", "words"])


def test_its_form_edits_the_source_in_a_box_and_keeps_it_as_typed(alice, flow):
    source = "def main(a, b):\n    # sum\n    return {'total': a + b}\n"
    html = edit(alice, flow, f_code=source, f_outputs="total\n")
    assert '<textarea id="' in html and 'name="f_code" rows="12"' in html
    assert payload(html)["valid"] is True
    assert payload(html)["config"] == {"code": source, "outputs": ["total"]}


def test_code_without_main_is_a_problem_on_the_code_field(alice, flow):
    html = edit(alice, flow, f_code="x = 1\n", f_outputs="total")
    assert payload(html)["valid"] is False
    assert "defines no function main(...) at its top level" in html
