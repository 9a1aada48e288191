"""The ``template`` node's form offers its output kind, and json mode gives it port value."""

from __future__ import annotations

import pytest

from tests.webapp.test_adding_a_node_type import client_for, payload
from webapp.flows import services


@pytest.fixture
def flow(alice):
    return services.create(alice, "Templating", services.starter_graph("Templating"))


def edit(user, flow, **fields: str) -> str:
    body = {"type": "template", "node_id": "template1", "form_key": "k1", **fields}
    return client_for(user).post(f"/flows/{flow.pk}/node-form/", body).content.decode()


def test_its_form_offers_text_or_json_output_and_stores_json_when_chosen(alice, flow):
    html = edit(alice, flow, f_template="[{{ x | tojson }}]", f_output="json")
    assert 'name="f_output"' in html and 'value="json"' in html
    answer = payload(html)
    assert answer["valid"] is True
    assert answer["config"] == {"template": "[{{ x | tojson }}]", "output": "json"}
    html = edit(alice, flow, f_template="Hi {{ x }}", f_output="text")
    assert payload(html)["config"] == {"template": "Hi {{ x }}"}  # text: the default


def test_the_palette_starts_it_as_text_with_port_text(alice, flow):
    data = client_for(alice).get(f"/flows/{flow.pk}/").context["editor_data"]
    assert data["palette"]["template"]["config"] == {"template": ""}
    assert data["palette"]["template"]["ports"]["outputs"] == ["text"]


def test_the_canvas_gives_a_json_template_the_port_value_instead_of_text():
    from webapp.core.canvas import ports_for

    json_ports = ports_for("template", {"template": "[{{ x | tojson }}]", "output": "json"})
    assert (json_ports["inputs"], json_ports["outputs"]) == (["x"], ["value"])
    assert ports_for("template", {"template": "{{ x }}"})["outputs"] == ["text"]
