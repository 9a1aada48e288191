"""An agent killed mid-loop with its server resumes at its next turn (the embedded driver).

The real Daphne server runs the flow's agent on its own event loop against the fake
Messages server; at turn 4 of 5 (the model never answering) the server is SIGKILLed.
``recover_runs`` marks the run failed, the server starts again, and the run is resumed
through the API: the agent reads turns 1-3 from the failed run's log, so the fake server's
request log shows only turns 4 and 5 asked for again, and no tool call is run twice.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from tests.fakes.anthropic_server import FakeAnthropic, FakeResponse
from tests.services import DaphneServer
from tests.support.wait import wait_for
from webapp.accounts.models import ApiToken
from webapp.flows import services
from webapp.runs.models import Run, RunEvent

GRAPH = {
    "directed": True,
    "multigraph": True,
    "graph": {"name": "Five turns"},
    "nodes": [
        {"id": "q", "type": "input", "config": {"name": "q"}, "position": {"x": 0, "y": 0}},
        {
            "id": "solve",
            "type": "agent",
            "config": {"prompt": "{{ q }}", "tools": ["calculator"], "max_turns": 6},
            "position": {"x": 0, "y": 0},
        },
        {"id": "out", "type": "output", "config": {"name": "a"}, "position": {"x": 0, "y": 0}},
    ],
    "edges": [
        {"source": "q", "target": "solve", "source_port": "value", "target_port": "q"},
        {"source": "solve", "target": "out", "source_port": "text", "target_port": "value"},
    ],
}


@pytest.fixture
def model() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server


@pytest.fixture
def live(tmp_path, django_db_blocker, model: FakeAnthropic) -> Iterator[tuple[DaphneServer, dict]]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "DJANGO_"))},
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "ANTHROPIC_API_KEY": "test-key",
        "ANTHROPIC_BASE_URL": model.url,
        "DEBUG": "1",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "NO_PROXY": "127.0.0.1,localhost",
        "PYTHONUNBUFFERED": "1",
    }
    server = DaphneServer(env, tmp_path / "daphne.log", django_db_blocker)
    server.manage("migrate", "--noinput")

    def world() -> dict:
        user = get_user_model().objects.create_user("alice", password="x")
        flow = services.create(user, "Five turns", GRAPH)
        return {"token": ApiToken.issue(user, "t")[1], "flow": flow.pk}

    ids = server.orm(world)
    server.start()
    yield server, ids
    server.stop()


def call(server: DaphneServer, token: str, path: str, body: dict | None = None) -> Any:
    request = urllib.request.Request(
        server.url + path,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="GET" if body is None else "POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def run_status(server: DaphneServer, run_id: int) -> str:
    return server.orm(lambda: Run.objects.values_list("status", flat=True).get(pk=run_id))


def logged(server: DaphneServer, run_id: int, type_: str) -> list[dict]:
    def read() -> list[dict]:
        rows = RunEvent.objects.filter(run_id=run_id, type=type_).order_by("seq")
        return list(rows.values_list("payload", flat=True))

    return server.orm(read)


def tool_results(body: dict) -> list[str]:
    return [
        block["content"]
        for message in body["messages"]
        if isinstance(message["content"], list)
        for block in message["content"]
        if block.get("type") == "tool_result"
    ]


def test_an_agent_killed_at_turn_4_of_5_resumes_at_turn_4_after_a_restart(live, model):
    server, ids = live
    token = ids["token"]
    for expression in ("1+1", "2+2", "3+3"):
        model.enqueue(FakeResponse(tool_uses=[("calculator", {"expression": expression})]))
    model.enqueue(FakeResponse(hang=True))
    started = call(server, token, f"/api/flows/{ids['flow']}/runs", {"inputs": {"q": "count"}})
    run_id = started["id"]
    wait_for(lambda: len(model.message_requests) == 4, timeout=60, message="turn 4 asked for")
    # Turn 3's reply and result were stored before turn 4 was asked for.
    assert [t["turn"] for t in logged(server, run_id, "agent_turn")] == [1, 2, 3]
    assert [t["content"] for t in logged(server, run_id, "agent_tool")] == ["2", "4", "6"]

    server.process.kill()
    server.manage("recover_runs")
    assert run_status(server, run_id) == "failed"
    server.start()

    model.enqueue(
        FakeResponse(tool_uses=[("calculator", {"expression": "4+4"})]),
        FakeResponse(text="all done"),
    )
    resumed = call(server, token, f"/api/runs/{run_id}/resume", {})["id"]
    deadline = time.monotonic() + 60
    while run_status(server, resumed) not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline, "the resumed run did not end"
        time.sleep(0.2)
    assert run_status(server, resumed) == "succeeded"

    asked = model.message_requests
    assert len(asked) == 6, "turns 1-3 are not asked for again: only 4 (again) and 5"
    assert asked[4]["messages"] == asked[3]["messages"], "turn 4 is asked as it was"
    assert tool_results(asked[4]) == ["2", "4", "6"]
    assert tool_results(asked[5]) == ["2", "4", "6", "8"]
    turns = logged(server, resumed, "agent_turn")
    assert [(t["turn"], t.get("source")) for t in turns] == [
        (1, f"run {run_id}"),
        (2, f"run {run_id}"),
        (3, f"run {run_id}"),
        (4, None),
        (5, None),
    ]
    outputs = server.orm(lambda: Run.objects.values_list("outputs", flat=True).get(pk=resumed))
    assert outputs["a"].endswith("all done")
