"""The ``code`` node in the web app: its palette entry and form, generated from what its
type says; a flow holding one checked on save through the API, run by the web app's
executor, its output, stdout and traceback in the run's events."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from tests.webapp.test_adding_a_node_type import client_for, payload
from tests.webapp.test_api import JSON, api, auth, offline  # noqa: F401 - fixtures
from webapp import execution
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


# ---- Through the API: saved, checked, run by the web app's executor, its events read back ----


def code_flow(code: str, outputs: list[str]) -> dict:
    return {
        "graph": {"name": "Python"},
        "nodes": [
            {"id": "text", "type": "input", "config": {"name": "text"}},
            {"id": "py", "type": "code", "config": {"code": code, "outputs": outputs}},
            {"id": "out", "type": "output", "config": {"name": "value"}},
        ],
        "edges": [
            {"source": "text", "target": "py", "source_port": "value", "target_port": "text"},
            {"source": "py", "target": "out", "source_port": outputs[0], "target_port": "value"},
        ],
    }


def test_a_flow_whose_code_cannot_run_is_saved_with_the_problem_and_refused_a_run(api):  # noqa: F811
    response = api.post("/api/flows", {"name": "bad", "graph": code_flow("x = 1", ["n"])})
    assert response.status_code == 201
    [problem] = response.json()["problems"]
    assert problem["node"] == "py"
    assert "defines no function main(...) at its top level" in problem["text"]
    run = api.post(f"/api/flows/{response.json()['id']}/runs", {"inputs": {"text": "x"}})
    assert run.status_code == 400
    assert [p["text"] for p in run.json()["problems"]] == [problem["text"]]


async def run_through_the_api(async_client, alice, alice_token, code: str) -> tuple[dict, list]:
    flow = await sync_to_async(services.create)(alice, "Python", code_flow(code, ["n"]))
    headers = auth(alice_token)
    response = await async_client.post(
        f"/api/flows/{flow.pk}/runs",
        {"inputs": {"text": "a b c"}},
        content_type=JSON,
        headers=headers,
    )
    assert response.status_code == 201, response.content
    run_id = response.json()["id"]
    await execution.driver().wait_idle()
    body = (await async_client.get(f"/api/runs/{run_id}", headers=headers)).json()
    events = (await async_client.get(f"/api/runs/{run_id}/events", headers=headers)).json()
    return body, events["items"]


@pytest.mark.django_db(transaction=True)
async def test_a_run_through_the_api_runs_the_code_and_records_what_it_printed(
    async_client, alice, alice_token
):
    code = (
        "def main(text):\n    print('words:', text.split())\n    return {'n': len(text.split())}\n"
    )
    body, events = await run_through_the_api(async_client, alice, alice_token, code)
    assert body["status"] == "succeeded", body["error"]
    assert body["outputs"] == {"value": 3}
    [done] = [e for e in events if e["type"] == "node_finished" and e["node"] == "py"]
    assert done["output"] == {"n": 3}
    assert done["detail"] == {"stdout": "words: ['a', 'b', 'c']\n"}


@pytest.mark.django_db(transaction=True)
async def test_a_failing_code_run_records_its_traceback_on_the_node(
    async_client, alice, alice_token
):
    code = "def main(text):\n    return {'n': 1 / 0}\n"
    body, events = await run_through_the_api(async_client, alice, alice_token, code)
    assert body["status"] == "failed"
    [failed] = [e for e in events if e["type"] == "node_failed" and e["node"] == "py"]
    assert failed["error"] == (
        "Traceback (most recent call last):\n"
        '  File "<code>", line 2, in main\n'
        "    return {'n': 1 / 0}\n"
        "                 ~~^~~\n"
        "ZeroDivisionError: division by zero\n"
    )
