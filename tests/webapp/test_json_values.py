"""JSON values end to end in the web app: a template's JSON output is stored and served as
structure, and the run's outputs and the inspector show it pretty, strings as text."""

from __future__ import annotations

import html as html_lib
import json
import re

import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse

from webapp import execution
from webapp.execution import plans
from webapp.flows import services
from webapp.runs.models import Run

PLAN = {"topic": "bees <&>", "steps": ["draft", "edit"], "n": 2}

GRAPH = {
    "graph": {"name": "plan"},
    "nodes": [
        {"id": "topic", "type": "input", "config": {"name": "topic"}},
        {
            "id": "plan",
            "type": "template",
            "config": {
                "output": "json",
                "template": '{"topic": {{ topic | tojson }}, "steps": ["draft", "edit"], "n": 2}',
            },
        },
        {"id": "say", "type": "template", "config": {"template": "About {{ topic }}"}},
        {"id": "out", "type": "output", "config": {"name": "plan"}},
        {"id": "said", "type": "output", "config": {"name": "said"}},
    ],
    "edges": [
        {"source": "topic", "target": "plan", "source_port": "value", "target_port": "topic"},
        {"source": "topic", "target": "say", "source_port": "value", "target_port": "topic"},
        {"source": "plan", "target": "out", "source_port": "value", "target_port": "value"},
        {"source": "say", "target": "said", "source_port": "text", "target_port": "value"},
    ],
}


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    plans.engine_services.cache_clear()
    yield
    plans.engine_services.cache_clear()


def pres(page: str) -> dict[str, str]:
    """Each <pre class="output-..."> on a page, unescaped, by its class."""
    found: dict[str, str] = {}
    for kind, text in re.findall(r'<pre class="output-(json|text)">(.*?)</pre>', page, re.S):
        found.setdefault(kind, html_lib.unescape(text))
    return found


@pytest.mark.django_db(transaction=True)
async def test_a_json_output_is_served_as_structure_and_shown_pretty(async_client, alice):
    flow = await sync_to_async(services.create)(alice, "plan", GRAPH)
    run = await Run.objects.acreate(
        flow=flow,
        flow_version=await sync_to_async(flow.current)(),
        started_by=alice,
        inputs={"topic": "bees <&>"},
    )
    execution.start(run.pk)
    await execution.driver().wait_idle()
    await run.arefresh_from_db()
    assert run.status == "succeeded"
    assert run.outputs == {"plan": PLAN, "said": "About bees <&>"}

    await sync_to_async(async_client.force_login)(alice)
    outputs = (await async_client.get(reverse("run_outputs", args=[run.pk]))).content.decode()
    assert pres(outputs) == {
        "json": json.dumps(PLAN, indent=2, ensure_ascii=False),
        "text": "About bees <&>",
    }
    assert "bees <&>" not in outputs  # escaped, never markup

    card = (await async_client.get(reverse("run_node", args=[run.pk, "plan"]))).content.decode()
    assert pres(card) == {"json": json.dumps(PLAN, indent=2, ensure_ascii=False)}
    card = (await async_client.get(reverse("run_node", args=[run.pk, "say"]))).content.decode()
    assert pres(card) == {"text": "About bees <&>"}

    body = (await async_client.get(f"/api/runs/{run.pk}")).json()
    assert body["outputs"] == {"plan": PLAN, "said": "About bees <&>"}
