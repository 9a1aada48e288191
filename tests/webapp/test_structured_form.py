"""The node form and the editor's ports for structured output and sampling (llm, agent, router)."""

from __future__ import annotations

import html as html_lib
import json
from pathlib import Path

import pytest
from django.test import Client

from graphs.nodes import NODE_TYPES
from webapp.flows import forms, services

EXAMPLES = Path(__file__).parents[2] / "examples"
SCHEMA = {
    "type": "object",
    "properties": {"verdict": {"enum": ["PASS", "FAIL"]}, "feedback": {"type": "string"}},
    "required": ["verdict"],
}


@pytest.fixture
def flow(alice):
    return services.create(alice, "Chain", json.loads((EXAMPLES / "chain.json").read_text()))


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def payload_of(html: str) -> dict:
    return json.loads(html.split('<script type="application/json">')[1].split("</script>")[0])


def edit(client: Client, flow, **fields: str) -> str:
    # As the browser posts the form: the citations box is ticked by default.
    data = {
        "type": "llm",
        "node_id": "judge",
        "form_key": "k1",
        "f_prompt": "Judge {{ x }}",
        "f_citations": "on",
    }
    response = client.post(f"/flows/{flow.pk}/node-form/", data | fields)
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.parametrize("node_type", ["llm", "agent"])
def test_the_schema_is_a_json_field_with_its_help_and_sampling_sits_in_advanced(
    alice, flow, node_type
):
    html = (
        client_for(alice)
        .post(
            f"/flows/{flow.pk}/node-form/",
            {"type": node_type, "node_id": "n", "config": json.dumps({"prompt": "x"})},
        )
        .content.decode()
    )
    assert 'name="f_output_schema"' in html
    assert "Output schema" in html
    assert "Each property becomes an output port" in html
    assert "data-schema-table" in html and "<summary>Raw JSON</summary>" in html
    advanced = html.split("<summary>Advanced</summary>")[1]
    for name in ("temperature", "top_p", "top_k", "stop_sequences"):
        assert f'name="f_{name}"' in advanced, name
    assert 'name="f_output_schema"' not in advanced


def test_sampling_fields_are_numbers_with_their_ranges_and_lines():
    fields = {f.name: f for f in forms.fields_for(NODE_TYPES["llm"], {"prompt": "x"})}
    assert (fields["temperature"].kind, fields["temperature"].minimum) == ("number", "0")
    assert fields["temperature"].maximum == "1"
    assert fields["top_k"].kind == "number" and fields["top_k"].minimum == "1"
    assert fields["stop_sequences"].kind == "lines"
    assert fields["output_schema"].kind == "schema" and not fields["output_schema"].advanced
    router = {f.name: f for f in forms.fields_for(NODE_TYPES["router"], {"routes": ["a"]})}
    assert router["temperature"].advanced


def test_a_valid_schema_and_settings_are_kept_in_the_config(alice, flow):
    html = edit(
        client_for(alice),
        flow,
        f_output_schema=json.dumps(SCHEMA),
        f_temperature="0.2",
        f_stop_sequences="END\nSTOP",
        f_max_tokens="1024",
        f_retries="2",
        f_on_error="fail",
    )
    payload = payload_of(html)
    assert payload["valid"] is True, html
    assert payload["config"] == {
        "prompt": "Judge {{ x }}",
        "output_schema": SCHEMA,
        "temperature": 0.2,
        "stop_sequences": ["END", "STOP"],
    }


def test_a_schema_that_cannot_make_ports_is_reported_on_its_field(alice, flow):
    schema = {"type": "object", "properties": {"value": {"type": "string"}}}
    html = edit(client_for(alice), flow, f_output_schema=json.dumps(schema))
    assert payload_of(html)["valid"] is False
    error = html.split('data-testid="error-output_schema">')[1].split("<")[0]
    assert html_lib.unescape(error) == (
        "property 'value' is taken by the port holding the whole object; rename it"
    )


def test_temperature_and_top_p_together_are_reported_on_top_p(alice, flow):
    html = edit(client_for(alice), flow, f_temperature="0.5", f_top_p="0.9")
    assert 'data-testid="error-top_p">set temperature or top_p, not both' in html


def test_the_editor_gives_a_structured_node_a_port_per_property_plus_value(alice):
    response = client_for(alice).post(
        "/api/editor/ports",
        json.dumps({"type": "llm", "config": {"prompt": "{{ q }}", "output_schema": SCHEMA}}),
        content_type="application/json",
    )
    body = response.json()
    assert body["outputs"] == ["value", "verdict", "feedback", "citations"]
    assert body["problems"] == []
