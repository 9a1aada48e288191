"""Run again, re-run from a node, resume: the services, the API, the run page's forms.

Runs go through the real driver and the fake Anthropic server; its request log shows
which nodes called the model. Each node's prompt starts with its name ("draft: ...").
"""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient, Client

from graphs.errors import FlowInvalid
from tests.support.wait import wait_for_async
from webapp import execution
from webapp.accounts.models import ApiToken
from webapp.execution import plans
from webapp.flows import services as flows
from webapp.runs import services
from webapp.runs.models import Run, RunEvent

pytestmark = pytest.mark.django_db(transaction=True)
JSON = "application/json"


def chain(revise: str = "revise: {{ draft }} / {{ critique }}", retries: int = 2) -> dict:
    """topic -> draft -> critique -> revise (reads draft and critique) -> text."""

    def llm(node: str, prompt: str, **config) -> dict:
        return {"id": node, "type": "llm", "config": {"prompt": prompt, **config}}

    def edge(source: str, target: str, port: str, out: str = "text") -> dict:
        return {"source": source, "target": target, "source_port": out, "target_port": port}

    return {
        "graph": {"name": "chain"},
        "nodes": [
            {"id": "topic", "type": "input", "config": {"name": "topic", "default": "queues"}},
            llm("draft", "draft: {{ topic }}"),
            llm("critique", "critique: {{ draft }}"),
            llm("revise", revise, retries=retries),
            {"id": "final", "type": "output", "config": {"name": "text"}},
        ],
        "edges": [
            edge("topic", "draft", "topic", "value"),
            edge("draft", "critique", "draft"),
            edge("draft", "revise", "draft"),
            edge("critique", "revise", "critique"),
            edge("revise", "final", "value"),
        ],
    }


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def called(server) -> list[str]:
    """The node behind each model call so far, in order (from its prompt's first word)."""
    return [body["messages"][-1]["content"].split(":")[0] for body in server.message_requests]


@pytest.fixture
def model(anthropic_env):
    plans.engine_services.cache_clear()
    yield anthropic_env
    plans.engine_services.cache_clear()


@pytest.fixture
def flow(alice):
    return flows.create(alice, "Chain", chain())


@pytest.fixture
def api(async_client, alice_token):
    class Api:
        async def post(self, path: str, body: dict | None = None, token: str = alice_token):
            if body is None:
                return await async_client.post(path, headers=auth(token))
            return await async_client.post(path, body, content_type=JSON, headers=auth(token))

    return Api()


async def start(api, flow_id: int, **body) -> Run:
    response = await api.post(f"/api/flows/{flow_id}/runs", body)
    assert response.status_code == 201, response.content
    await execution.driver().wait_idle()
    return await Run.objects.aget(pk=response.json()["id"])


async def started(response) -> Run:
    assert response.status_code == 201, response.content
    await execution.driver().wait_idle()
    return await Run.objects.aget(pk=response.json()["id"])


async def node_events(run: Run, type_: str = "node_finished") -> dict[str, dict]:
    events = RunEvent.objects.filter(run=run, type=type_).order_by("seq")
    return {e["node"]: e async for e in events.values_list("payload", flat=True)}


# ---- Re-run from a node -------------------------------------------------------------------


async def test_rerun_from_a_node_calls_the_model_only_for_it_and_its_descendants(api, model, flow):
    parent = await start(api, flow.pk)
    assert called(model) == ["draft", "critique", "revise"]
    body = {"node": "critique", "ignore_cache": True}
    child = await started(await api.post(f"/api/runs/{parent.pk}/rerun-from", body))
    assert called(model)[3:] == ["critique", "revise"]
    assert child.status == "succeeded" and child.outputs == parent.outputs
    assert (child.kind, child.parent_id, child.from_node) == ("from_node", parent.pk, "critique")
    finished = await node_events(child)
    assert finished["draft"]["reused"] == {"source": f"run {parent.pk}"}
    assert finished["topic"]["reused"] == {"source": f"run {parent.pk}"}
    assert "reused" not in finished["critique"] and "reused" not in finished["revise"]


async def test_without_ignore_cache_an_unchanged_node_is_a_cache_hit(api, model, flow):
    parent = await start(api, flow.pk)
    child = await started(await api.post(f"/api/runs/{parent.pk}/rerun-from", {"node": "critique"}))
    assert len(model.message_requests) == 3
    finished = await node_events(child)
    assert finished["critique"]["cached"]["source"] == f"run {parent.pk}"


async def test_an_edited_config_takes_effect_and_is_stored_with_the_run(api, model, flow):
    parent = await start(api, flow.pk)
    config = {"prompt": "critique: be harsh on {{ draft }}\n#fake:reply=Too long."}
    body = {"node": "critique", "config": config}
    child = await started(await api.post(f"/api/runs/{parent.pk}/rerun-from", body))
    assert called(model)[3:] == ["critique", "revise"]
    finished = await node_events(child)
    assert finished["critique"]["output"] == {"text": "Too long.", "citations": []}
    assert "Too long." in model.message_requests[-1]["messages"][-1]["content"]
    edited = next(n for n in child.graph_override["nodes"] if n["id"] == "critique")
    assert edited["config"] == config
    # The flow itself is untouched: the edit lives with the run.
    current = await sync_to_async(lambda: flow.current().graph)()
    assert services.node_of(current, "critique")["config"] == {"prompt": "critique: {{ draft }}"}


async def test_edited_port_values_replace_what_arrives(api, model, flow):
    parent = await start(api, flow.pk)
    body = {"node": "revise", "inputs": {"critique": "needs examples"}, "ignore_cache": True}
    child = await started(await api.post(f"/api/runs/{parent.pk}/rerun-from", body))
    assert called(model)[3:] == ["revise"]
    prompt = model.message_requests[-1]["messages"][-1]["content"]
    assert prompt.endswith("/ needs examples")
    assert child.input_overrides == {"revise": {"critique": "needs examples"}}
    started_events = await node_events(child, "node_started")
    assert started_events["revise"]["inputs"]["critique"] == "needs examples"


async def test_a_bad_rerun_from_request_stores_nothing(api, model, flow):
    parent = await start(api, flow.pk)
    cases = [
        ({"node": "ghost"}, "no node 'ghost'"),
        ({"node": "critique", "config": {"prompt": "{{ nope"}}, "critique"),
        ({"node": "critique", "config": {"promt": "x"}}, "critique"),
        ({"node": "revise", "inputs": {"colour": "red"}}, "no input port 'colour'"),
    ]
    for body, phrase in cases:
        response = await api.post(f"/api/runs/{parent.pk}/rerun-from", body)
        assert response.status_code == 400, body
        text = " ".join(p["text"] for p in response.json()["problems"])
        assert phrase in text, (body, text)
    assert await Run.objects.acount() == 1


async def test_a_run_that_has_not_finished_cannot_be_rerun_from_a_node(alice, flow):
    run = await sync_to_async(Run.objects.create)(
        flow=flow, flow_version=await sync_to_async(flow.current)(), started_by=alice
    )
    with pytest.raises(ValueError, match="has not finished"):
        await sync_to_async(services.create_from_node)(run, alice, "critique")


# ---- Run again ---------------------------------------------------------------------------


async def test_run_again_uses_the_same_inputs_and_version(api, model, flow):
    parent = await start(api, flow.pk, inputs={"topic": "locks"})
    body = {"ignore_cache": True}
    child = await started(await api.post(f"/api/runs/{parent.pk}/rerun", body))
    assert (child.kind, child.parent_id, child.inputs) == ("rerun", parent.pk, {"topic": "locks"})
    assert child.flow_version_id == parent.flow_version_id and child.ignore_cache
    assert called(model) == ["draft", "critique", "revise"] * 2


async def test_run_again_with_edited_inputs_on_the_current_version(api, model, alice, flow):
    parent = await start(api, flow.pk)
    edited = chain(revise="revise v2: {{ draft }} / {{ critique }}")
    await sync_to_async(flows.save)(flow, alice, edited, 1)
    body = {"inputs": {"topic": "caches"}, "version": "current"}
    child = await started(await api.post(f"/api/runs/{parent.pk}/rerun", body))
    version = await sync_to_async(lambda: child.flow_version.number)()
    assert version == 2 and child.inputs == {"topic": "caches"}
    assert called(model)[3:] == ["draft", "critique", "revise v2"]


async def test_run_again_refuses_wrong_inputs_and_stores_nothing(api, model, flow):
    parent = await start(api, flow.pk)
    response = await api.post(f"/api/runs/{parent.pk}/rerun", {"inputs": {"colour": "red"}})
    assert response.status_code == 400
    assert "unknown input 'colour'" in response.json()["problems"][0]["text"]
    assert await Run.objects.acount() == 1


async def test_rerunning_a_rerun_from_an_edited_node_keeps_the_edit(api, model, flow):
    parent = await start(api, flow.pk)
    body = {"node": "critique", "config": {"prompt": "critique: {{ draft }}\n#fake:reply=Edited."}}
    child = await started(await api.post(f"/api/runs/{parent.pk}/rerun-from", body))
    again = await started(await api.post(f"/api/runs/{child.pk}/rerun", {"ignore_cache": True}))
    assert again.graph_override == child.graph_override
    assert (await node_events(again))["critique"]["output"] == {"text": "Edited.", "citations": []}


# ---- Resume ------------------------------------------------------------------------------


async def test_resume_of_a_failed_run_runs_only_what_did_not_finish(api, model, alice):
    # The first call of revise fails (no retries); the resumed one gets an answer.
    revise = "revise: {{ draft }} / {{ critique }} #fake:status=500 #fake:times=1"
    flow = await sync_to_async(flows.create)(alice, "Fails once", chain(revise, retries=0))
    parent = await start(api, flow.pk)
    assert parent.status == "failed"
    assert called(model) == ["draft", "critique", "revise"]
    child = await started(await api.post(f"/api/runs/{parent.pk}/resume"))
    assert child.status == "succeeded" and child.kind == "resume"
    assert called(model)[3:] == ["revise"]
    finished = await node_events(child)
    assert {n for n, e in finished.items() if "reused" in e} == {"topic", "draft", "critique"}


async def test_resume_of_a_cancelled_run_runs_only_what_did_not_finish(api, model, alice):
    revise = "revise: {{ draft }} / {{ critique }} #fake:hang #fake:times=1"
    flow = await sync_to_async(flows.create)(alice, "Hangs once", chain(revise))
    response = await api.post(f"/api/flows/{flow.pk}/runs", {})
    parent_id = response.json()["id"]
    await wait_for_async(
        lambda: len(model.message_requests) >= 3, timeout=10, message="the third model call"
    )
    assert (await api.post(f"/api/runs/{parent_id}/cancel")).status_code == 202
    await execution.driver().wait_idle()
    parent = await Run.objects.aget(pk=parent_id)
    assert parent.status == "cancelled"
    child = await started(await api.post(f"/api/runs/{parent_id}/resume"))
    assert child.status == "succeeded"
    assert called(model)[3:] == ["revise"]


async def test_only_a_failed_or_cancelled_run_can_be_resumed(api, model, flow):
    parent = await start(api, flow.pk)
    response = await api.post(f"/api/runs/{parent.pk}/resume")
    assert response.status_code == 409
    assert "only a failed or cancelled run can be resumed" in response.json()["detail"]
    assert await Run.objects.acount() == 1


async def test_resuming_a_resume_keeps_going_from_where_it_stopped(api, model, alice):
    revise = "revise: {{ draft }} / {{ critique }} #fake:status=500 #fake:times=2"
    flow = await sync_to_async(flows.create)(alice, "Fails twice", chain(revise, retries=0))
    first = await start(api, flow.pk)
    second = await started(await api.post(f"/api/runs/{first.pk}/resume"))
    assert second.status == "failed"
    third = await started(await api.post(f"/api/runs/{second.pk}/resume"))
    assert third.status == "succeeded"
    assert called(model) == ["draft", "critique", "revise", "revise", "revise"]
    assert third.parent_id == second.pk


async def test_resume_keeps_port_overrides_only_for_nodes_that_run_again(api, model, alice):
    revise = "revise: {{ draft }} / {{ critique }} #fake:status=500 #fake:times=1"
    flow = await sync_to_async(flows.create)(alice, "Fails once", chain(revise, retries=0))
    parent = await start(api, flow.pk)
    body = {"node": "critique", "inputs": {"draft": "short"}}
    child = await started(await api.post(f"/api/runs/{parent.pk}/rerun-from", body))
    assert child.status == "failed"  # revise reads a new critique: a first call, which fails
    resumed = await started(await api.post(f"/api/runs/{child.pk}/resume"))
    assert resumed.status == "succeeded", resumed.error
    assert resumed.input_overrides == {"critique": {"draft": "short"}}
    assert called(model) == ["draft", "critique", "revise", "critique", "revise", "revise"]
    finished = await node_events(resumed)
    assert finished["critique"]["reused"] == {"source": f"run {child.pk}"}
    assert finished["critique"]["output"]["text"] == "fake reply: critique: short"


# ---- Who may ------------------------------------------------------------------------------


def endpoints(run_id: int) -> list[tuple[str, dict | None]]:
    return [
        (f"/api/runs/{run_id}/rerun", {}),
        (f"/api/runs/{run_id}/rerun-from", {"node": "critique"}),
        (f"/api/runs/{run_id}/resume", None),
    ]


def pages(run_id: int) -> list[str]:
    return [
        f"/runs/{run_id}/rerun/",
        f"/runs/{run_id}/rerun-from/critique/",
        f"/runs/{run_id}/resume/",
    ]


async def test_a_stranger_gets_404_from_every_endpoint_and_form(
    api, model, flow, charlie, charlie_token
):
    parent = await start(api, flow.pk)
    for path, body in [*endpoints(parent.pk), ("/api/runs/999999/rerun", {})]:
        response = await api.post(path, body, token=charlie_token)
        assert response.status_code == 404, path
    client = AsyncClient()
    await client.aforce_login(charlie)
    for path in pages(parent.pk):
        assert (await client.post(path, {})).status_code == 404, path
    assert await Run.objects.acount() == 1


async def test_a_viewer_cannot_rerun(api, model, team_flow, carol):
    parent = await start(api, team_flow.pk, inputs={"input": "hi"})
    token = await sync_to_async(lambda: ApiToken.issue(carol, "tests")[1])()
    for path, body in endpoints(parent.pk):
        response = await api.post(path, body, token=token)
        assert response.status_code == 403, path
    client = AsyncClient()
    await client.aforce_login(carol)
    for path in pages(parent.pk):
        assert (await client.post(path, {})).status_code == 403, path
    assert await Run.objects.acount() == 1


# ---- The run page -------------------------------------------------------------------------


def page_of(user, run_id: int) -> str:
    client = Client()
    client.force_login(user)
    response = client.get(f"/runs/{run_id}/")
    assert response.status_code == 200
    return response.content.decode()


def inspector_of(user, run_id: int, node: str) -> str:
    client = Client()
    client.force_login(user)
    response = client.get(f"/runs/{run_id}/nodes/{node}/")
    assert response.status_code == 200
    return response.content.decode()


async def test_editors_see_the_actions_and_both_pages_show_the_relation(
    async_client, api, model, alice, flow
):
    parent = await start(api, flow.pk)
    await async_client.aforce_login(alice)
    response = await async_client.post(
        f"/runs/{parent.pk}/rerun-from/critique/",
        {"config": '{"prompt": "critique: short please {{ draft }}"}', "ignore_cache": "on"},
    )
    await execution.driver().wait_idle()
    child = await Run.objects.order_by("-pk").afirst()
    assert response.status_code == 302 and response.url == f"/runs/{child.pk}/"
    assert child.status == "succeeded" and child.ignore_cache
    assert called(model)[3:] == ["critique", "revise"]

    html = await sync_to_async(page_of)(alice, child.pk)
    assert "from node <code>critique</code> of" in html
    assert f'<a href="/runs/{parent.pk}/">#{parent.pk}</a>' in html
    assert 'data-testid="rerun"' in html and "Edit inputs and run" in html
    assert 'data-testid="resume"' not in html  # it succeeded
    # It ran an edited graph, so the flow's current version is something else to run.
    assert "Run again on the current version v1" in html
    parent_html = await sync_to_async(page_of)(alice, parent.pk)
    assert "Run again on the current version" not in parent_html
    assert f'Re-runs:\n      <a href="/runs/{child.pk}/"' in parent_html


async def test_the_inspector_offers_a_rerun_prefilled_with_config_and_inputs(api, model, alice):
    flow = await sync_to_async(flows.create)(alice, "Chain", chain())
    parent = await start(api, flow.pk)
    html = await sync_to_async(inspector_of)(alice, parent.pk, "revise")
    assert "Re-run from this node" in html
    assert f'action="/runs/{parent.pk}/rerun-from/revise/"' in html
    assert "&quot;prompt&quot;: &quot;revise: {{ draft }} / {{ critique }}&quot;" in html
    draft = (await node_events(parent))["draft"]["output"]["text"]
    field = 'name="port_draft" rows="1" spellcheck="false" data-testid="rerun-port-draft">'
    assert f"{field}\n{draft}</textarea>" in html


async def test_a_viewer_sees_the_relation_but_no_actions(api, model, team_flow, carol):
    parent = await start(api, team_flow.pk, inputs={"input": "hi"})
    child = await started(await api.post(f"/api/runs/{parent.pk}/rerun", {}))
    html = await sync_to_async(page_of)(carol, child.pk)
    assert "re-run of" in html and f"#{parent.pk}</a>" in html
    assert 'data-testid="rerun"' not in html and "Edit inputs and run" not in html
    inspector = await sync_to_async(inspector_of)(carol, parent.pk, "output")
    assert "Re-run from this node" not in inspector


async def test_unchanged_fields_in_the_form_are_not_overrides(async_client, api, model, alice):
    flow = await sync_to_async(flows.create)(alice, "Chain", chain())
    parent = await start(api, flow.pk)
    recorded = (await node_events(parent, "node_started"))["revise"]["inputs"]
    config = '{\n  "prompt": "revise: {{ draft }} / {{ critique }}",\n  "retries": 2\n}'
    await async_client.aforce_login(alice)
    response = await async_client.post(
        f"/runs/{parent.pk}/rerun-from/revise/",
        {
            "config": config,
            "port_draft": recorded["draft"],
            "port_critique": "better critique",
        },
    )
    assert response.status_code == 302
    await execution.driver().wait_idle()
    child = await Run.objects.order_by("-pk").afirst()
    assert child.graph_override is None
    assert child.input_overrides == {"revise": {"critique": "better critique"}}


async def test_a_refused_form_comes_back_with_the_problem_on_its_field(
    async_client, api, model, alice, flow
):
    parent = await start(api, flow.pk)
    await async_client.aforce_login(alice)
    bad_json = await async_client.post(
        f"/runs/{parent.pk}/rerun-from/critique/", {"config": "{not json"}
    )
    assert bad_json.status_code == 400
    html = bad_json.content.decode()
    assert 'data-testid="rerun-error-config">not valid JSON' in html and "{not json" in html
    bad_template = await async_client.post(
        f"/runs/{parent.pk}/rerun-from/critique/", {"config": '{"prompt": "{{ oops"}'}
    )
    assert bad_template.status_code == 400
    assert 'data-testid="rerun-error-config">' in bad_template.content.decode()
    bad_input = await async_client.post(
        f"/runs/{parent.pk}/rerun/", {"edit": "1", "in_topic": "", "in_colour": "red"}
    )
    assert bad_input.status_code == 400
    assert "unknown input &#x27;colour&#x27;" in bad_input.content.decode()
    resume = await async_client.post(f"/runs/{parent.pk}/resume/")
    assert resume.status_code == 409
    assert await Run.objects.acount() == 1


async def test_the_forms_need_the_csrf_token(api, model, alice, flow):
    parent = await start(api, flow.pk)
    client = AsyncClient(enforce_csrf_checks=True)
    await client.aforce_login(alice)
    for path in pages(parent.pk):
        assert (await client.post(path, {})).status_code == 403, path
    assert await Run.objects.acount() == 1


async def test_the_edit_inputs_form_starts_a_run_with_those_inputs(
    async_client, api, model, alice, flow
):
    parent = await start(api, flow.pk)
    await async_client.aforce_login(alice)
    response = await async_client.post(
        f"/runs/{parent.pk}/rerun/", {"edit": "1", "in_topic": "streams", "version": "run"}
    )
    assert response.status_code == 302
    await execution.driver().wait_idle()
    child = await Run.objects.order_by("-pk").afirst()
    assert child.inputs == {"topic": "streams"} and child.status == "succeeded"


def test_service_errors_name_what_is_wrong(alice, flow):
    run = Run.objects.create(
        flow=flow, flow_version=flow.current(), started_by=alice, status="succeeded"
    )
    with pytest.raises(ValueError, match="no node 'ghost'"):
        services.create_from_node(run, alice, "ghost")
    with pytest.raises(FlowInvalid, match="config must be a JSON object"):
        services.create_from_node(run, alice, "critique", config=["x"])
    with pytest.raises(services.NotResumable, match="is succeeded"):
        services.create_resume(run, alice)
    assert Run.objects.count() == 1


def test_the_api_schema_documents_the_new_endpoints(client):
    paths = client.get("/api/openapi.json").json()["paths"]
    for name in ("rerun", "rerun-from", "resume"):
        operation = paths[f"/api/runs/{{run_id}}/{name}"]["post"]
        assert {"201", "400", "404"} <= set(operation["responses"]), name
    assert "409" in paths["/api/runs/{run_id}/resume"]["post"]["responses"]
    run_in = client.get("/api/openapi.json").json()["components"]["schemas"]["RunIn"]
    assert "ignore_cache" in run_in["properties"]
