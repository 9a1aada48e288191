"""The editor page, its node form (server-rendered from the pydantic schemas), and
/api/editor/{ports,layout}."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from django.test import Client

from graphs.nodes import NODE_TYPES
from webapp.flows import services

EXAMPLES = Path(__file__).parents[2] / "examples"


def example(name: str) -> dict:
    return json.loads((EXAMPLES / f"{name}.json").read_text())


@pytest.fixture
def flow(alice):
    return services.create(alice, "Router", example("router"))


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def post_json(client: Client, url: str, body: dict):
    return client.post(url, json.dumps(body), content_type="application/json")


# ---- The page -------------------------------------------------------------------------


def test_the_owner_gets_the_editor(alice, flow):
    response = client_for(alice).get(f"/flows/{flow.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    for name in NODE_TYPES:
        assert f'data-testid="palette-{name}"' in html
    for testid in ("save", "version", "dirty", "problems", "flow-name"):
        assert f'data-testid="{testid}"' in html
    assert "vendor/x6.min.js" in html
    assert html.index("js/canvas/editor.js") < html.index("js/runs/view.js")
    data = response.context["editor_data"]
    assert data["version"] == 1
    assert data["editable"] is True
    assert data["doc"]["graph"]["name"] == "Code or docs question"
    # Ports for every node come with the page, from the engine.
    assert data["ports"]["route"]["outputs"] == ["code", "docs"]
    assert data["ports"]["code"]["inputs"] == ["question"]


def test_a_stranger_gets_404(charlie, flow):
    assert client_for(charlie).get(f"/flows/{flow.pk}/").status_code == 404
    response = client_for(charlie).post(
        f"/flows/{flow.pk}/node-form/", {"type": "llm", "node_id": "a", "config": "{}"}
    )
    assert response.status_code == 404


def test_anonymous_visitors_are_sent_to_log_in(flow):
    response = Client().get(f"/flows/{flow.pk}/")
    assert response.status_code == 302
    assert "/login/" in response["Location"]


# ---- /api/editor/ports -------------------------------------------------------------------


def test_llm_ports_are_its_prompt_variables(alice):
    config = {"prompt": "Use {{ context }} to answer {{ question }}", "system": "Be {{ tone }}"}
    response = post_json(client_for(alice), "/api/editor/ports", {"type": "llm", "config": config})
    assert response.status_code == 200
    body = response.json()
    assert body["inputs"] == ["context", "question", "tone"]
    assert body["outputs"] == ["text", "citations"]  # the cited passages come after the answer
    assert body["problems"] == []
    assert body["known"] is True


def test_router_ports_are_its_routes_plus_error_when_it_continues(alice):
    config = {"routes": ["code", "docs"], "default": "docs", "on_error": "continue"}
    body = post_json(
        client_for(alice), "/api/editor/ports", {"type": "router", "config": config}
    ).json()
    assert body["inputs"] == ["input"]
    assert body["outputs"] == ["code", "docs", "error"]
    config["on_error"] = "fail"
    body = post_json(
        client_for(alice), "/api/editor/ports", {"type": "router", "config": config}
    ).json()
    assert body["outputs"] == ["code", "docs"]


def test_merge_takes_any_port(alice):
    body = post_json(client_for(alice), "/api/editor/ports", {"type": "merge", "config": {}}).json()
    assert body["inputs"] is None
    assert body["outputs"] == ["value"]


def test_ports_follow_the_valid_fields_of_an_invalid_config(alice):
    config = {"prompt": "{{ question }}", "max_tokens": -1}
    body = post_json(
        client_for(alice), "/api/editor/ports", {"type": "llm", "config": config}
    ).json()
    assert body["inputs"] == ["question"]
    assert body["problems"] == ["config.max_tokens: Input should be greater than or equal to 1"]


def test_ports_are_unknown_while_a_template_does_not_parse(alice):
    body = post_json(
        client_for(alice), "/api/editor/ports", {"type": "template", "config": {"template": "{{ a"}}
    ).json()
    assert body["known"] is False
    assert "syntax error" in body["problems"][0]


def test_an_unknown_type_has_no_ports(alice):
    body = post_json(client_for(alice), "/api/editor/ports", {"type": "nope", "config": {}}).json()
    assert body["known"] is False
    assert "unknown node type" in body["problems"][0]


def test_the_editor_api_needs_a_user(db):
    response = post_json(Client(), "/api/editor/ports", {"type": "merge", "config": {}})
    assert response.status_code == 401


# ---- The node form -------------------------------------------------------------------


@pytest.mark.parametrize("node_type", list(NODE_TYPES))
def test_the_form_has_a_field_for_every_config_key(alice, flow, node_type):
    response = client_for(alice).post(
        f"/flows/{flow.pk}/node-form/",
        {
            "type": node_type,
            "node_id": f"{node_type}1",
            "label": "My node",
            "config": json.dumps(NODE_TYPES[node_type].default_config),
        },
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-testid="node-form"' in html
    assert 'value="My node"' in html
    for field in NODE_TYPES[node_type].Config.model_fields:
        assert f'name="f_{field}"' in html, field
    assert "<summary>Advanced</summary>" in html
    assert "hx-swap-oob" not in html  # opening swaps the whole form
    # The palette defaults are valid, but for a field that must name a saved flow (a
    # subflow's): there is none to name until someone picks one; and the prompt of an llm
    # or an agent, required, which a new node leaves for its author to write.
    picks = [
        name
        for name, info in NODE_TYPES[node_type].Config.model_fields.items()
        if (info.json_schema_extra or {}).get("widget") == "flow"  # type: ignore[union-attr]
    ]
    assert ("needs attention" in html) == (bool(picks) or node_type in ("llm", "agent"))


def test_field_kinds_follow_the_schema(alice, flow):
    html = (
        client_for(alice)
        .post(
            f"/flows/{flow.pk}/node-form/",
            {
                "type": "agent",
                "node_id": "a",
                "config": json.dumps({"prompt": "{{ q }}", "tools": ["calculator"]}),
            },
        )
        .content.decode()
    )
    assert '<textarea id="' in html and 'name="f_prompt"' in html
    assert 'type="number"' in html and 'name="f_max_turns"' in html
    assert 'type="checkbox" name="f_tools" value="calculator" checked' in html
    assert 'type="checkbox" name="f_tools" value="http_get">' in html
    assert '<option value="continue">' in html
    assert "Variables: <code>{{ q }}</code>" in html


def test_editing_reports_errors_on_the_field(alice, flow):
    response = client_for(alice).post(
        f"/flows/{flow.pk}/node-form/",
        {
            "type": "llm",
            "node_id": "code",
            "form_key": "abc123",
            "label": "Code",
            "f_prompt": "Answer {{ question }}",
            "f_max_tokens": "-1",
            "f_retries": "2",
            "f_on_error": "fail",
        },
    )
    html = response.content.decode()
    assert 'data-testid="error-max_tokens">Input should be greater than or equal to 1' in html
    assert 'id="nf-abc123-max_tokens-fb" class="nf-fb" hx-swap-oob="true"' in html
    payload = json.loads(html.split('<script type="application/json">')[1].split("</script>")[0])
    assert payload["valid"] is False
    assert payload["config"]["max_tokens"] == -1  # the node keeps what was typed


def test_a_rule_naming_an_unknown_route_is_reported_on_rules(alice, flow):
    html = (
        client_for(alice)
        .post(
            f"/flows/{flow.pk}/node-form/",
            {
                "type": "router",
                "node_id": "route",
                "form_key": "k1",
                "f_routes": "code\ndocs",
                "f_mode": "match",
                "f_rules": "rows",
                "f_rules.route": "nope",
                "f_rules.pattern": "x",
                "f_default": "docs",
                "f_retries": "0",
                "f_on_error": "fail",
            },
        )
        .content.decode()
    )
    assert 'data-testid="error-rules">rule names route &#x27;nope&#x27;' in html


def test_bad_json_keeps_the_previous_value(alice, flow):
    html = (
        client_for(alice)
        .post(
            f"/flows/{flow.pk}/node-form/",
            {"type": "map", "node_id": "each", "form_key": "k1", "f_flow": "[{"},
        )
        .content.decode()
    )
    assert 'data-testid="error-flow">not valid JSON' in html
    payload = json.loads(html.split('<script type="application/json">')[1].split("</script>")[0])
    assert payload["keep"] == ["flow"]
    assert "flow" not in payload["config"]


def test_a_valid_edit_returns_the_normalized_config(alice, flow):
    html = (
        client_for(alice)
        .post(
            f"/flows/{flow.pk}/node-form/",
            {
                "type": "llm",
                "node_id": "code",
                "form_key": "k1",
                "label": "Coder",
                "f_prompt": "Hi {{ name }}",
                "f_system": "",
                "f_model": "",
                "f_max_tokens": "1024",
                "f_retries": "2",
                "f_on_error": "continue",
                # Ticked by default, so the browser posts it.
                "f_citations": "on",
            },
        )
        .content.decode()
    )
    payload = json.loads(html.split('<script type="application/json">')[1].split("</script>")[0])
    assert payload == {
        "node": "code",
        "type": "llm",
        "label": "Coder",
        "config": {"prompt": "Hi {{ name }}", "on_error": "continue"},
        "valid": True,
        "keep": [],
        # A key not made by the editor (no key_follows) stays as it is.
        "key": "code",
    }
    assert "Variables: <code>{{ name }}</code>" in html


# ---- /api/editor/layout ------------------------------------------------------------------


def test_layout_orders_a_chain_left_to_right(alice):
    doc = example("pipeline")
    for node in doc["nodes"]:
        node.pop("position", None)
    body = post_json(client_for(alice), "/api/editor/layout", {"graph": doc}).json()
    positions = body["positions"]
    assert set(positions) == {node["id"] for node in doc["nodes"]}
    xs = [positions[node]["x"] for node in ("ticket", "extract", "compute", "reply", "format")]
    assert xs == sorted(xs) and len(set(xs)) == len(xs)


def test_layout_ignores_the_back_edges_of_loops(alice):
    doc = example("loop")
    sizes = {node["id"]: {"width": 210, "height": 100} for node in doc["nodes"]}
    body = post_json(client_for(alice), "/api/editor/layout", {"graph": doc, "sizes": sizes}).json()
    positions = body["positions"]
    assert set(positions) == {node["id"] for node in doc["nodes"]}
    assert positions["task"]["x"] < positions["generate"]["x"] < positions["check"]["x"]
    # Nodes of one layer are spread vertically without overlapping.
    same = {}
    for at in positions.values():
        same.setdefault(at["x"], []).append(at["y"])
    for ys in same.values():
        ys.sort()
        assert all(b - a >= 100 for a, b in itertools.pairwise(ys))


def test_layout_refuses_a_malformed_graph(alice):
    response = post_json(client_for(alice), "/api/editor/layout", {"graph": {"nodes": 3}})
    assert response.status_code == 400
    assert response.json()["problems"]


# ---- Node keys: the form decides them, /api/editor/rename applies them -----------------


def key_payload(html: str) -> dict:
    return json.loads(html.split('<script type="application/json">')[1].split("</script>")[0])


def node_form_edit(client: Client, flow, **fields: str) -> str:
    body = {"type": "llm", "form_key": "abc123", "f_prompt": "Hi", "f_retries": "0"}
    body.update(fields)
    f_on_error = {"f_on_error": "fail"}
    return client.post(f"/flows/{flow.pk}/node-form/", {**body, **f_on_error}).content.decode()


def test_a_generated_key_follows_the_label_until_one_is_typed(alice, flow):
    client = client_for(alice)
    taken = json.dumps(["summary", "out"])
    html = node_form_edit(
        client, flow, node_id="llm3", label="Summary", key_follows="1", taken=taken
    )
    assert key_payload(html)["key"] == "summary_2"
    typed = node_form_edit(
        client, flow, node_id="llm3", label="Summary", key_follows="0", node_key="digest"
    )
    assert key_payload(typed)["key"] == "digest"


def test_a_typed_key_outside_the_charset_or_taken_is_refused_on_the_field(alice, flow):
    client = client_for(alice)
    taken = json.dumps(["out"])
    for typed, message in (
        ("my key", "a key is an identifier"),
        ('x"><script>', "a key is an identifier"),
        ("out", "another node already has the key out"),
    ):
        html = node_form_edit(
            client, flow, node_id="llm3", key_follows="0", node_key=typed, taken=taken
        )
        assert key_payload(html)["key"] == "llm3"
        assert message in html
        assert "<script>" not in html.split('data-testid="key-error"')[1].split("</p>")[0]


def test_an_inputs_key_follows_its_name(alice, flow):
    html = (
        client_for(alice)
        .post(
            f"/flows/{flow.pk}/node-form/",
            {"type": "input", "node_id": "input1", "form_key": "abc123", "f_name": "question"},
        )
        .content.decode()
    )
    assert key_payload(html)["key"] == "question"
    assert 'data-testid="field-key"' not in html


def test_the_rename_api_rewrites_the_document_and_refuses_a_taken_key(alice):
    client = client_for(alice)
    document = example("router")
    node = document["nodes"][1]["id"]
    out = post_json(client, "/api/editor/rename", {"graph": document, "node": node, "key": "k2"})
    assert out.status_code == 200
    renamed = out.json()["graph"]
    assert "k2" in {n["id"] for n in renamed["nodes"]}
    assert node not in {n["id"] for n in renamed["nodes"]}
    assert all(node not in (e["source"], e["target"]) for e in renamed["edges"])
    taken = document["nodes"][0]["id"]
    refused = post_json(
        client, "/api/editor/rename", {"graph": document, "node": node, "key": taken}
    )
    assert refused.status_code == 400
    assert refused.json()["problems"][0]["message"] == f"another node already has the key {taken}"
    unsafe = post_json(
        client, "/api/editor/rename", {"graph": document, "node": node, "key": "a b"}
    )
    assert unsafe.status_code == 400


def test_the_rename_api_needs_a_login():
    out = Client().post(
        "/api/editor/rename",
        json.dumps({"graph": {}, "node": "a", "key": "b"}),
        content_type="application/json",
    )
    assert out.status_code == 401
