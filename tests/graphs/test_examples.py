"""Every example flow runs offline, and does what its pattern promises."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from graphs.errors import NodeError
from graphs.llm.anthropic import AnthropicClient
from graphs.llm.offline import OfflineClient
from graphs.llm.types import ModelRequest, ModelResponse, Usage
from tests.fakes.anthropic_server import FakeResponse
from tests.graphs.support import example_world, finished, of_type, run, statuses

EXAMPLES = Path(__file__).parents[2] / "examples"


def example(name: str) -> dict:
    return json.loads((EXAMPLES / f"{name}.json").read_text())


def test_there_is_one_example_per_pattern():
    names = {p.stem for p in EXAMPLES.glob("*.json")}
    assert names == {
        "chain",
        "router",
        "fanout",
        "map",
        "agent",
        "loop",
        "pipeline",
        "orchestrator",
        "evaluate",
        "http",
    }


@pytest.mark.parametrize("name", sorted(p.stem for p in EXAMPLES.glob("*.json")))
async def test_each_example_runs_offline_and_succeeds(name):
    with example_world(name) as (inputs, services):
        result, events = await run(example(name), inputs, **services)
    assert result.status == "succeeded", result.error
    assert result.outputs
    assert events[-1]["type"] == "run_finished"


async def test_chain_feeds_the_draft_and_critique_into_the_revision():
    _, events = await run(example("chain"))
    revise = next(e for e in of_type(events, "node_started") if e["node"] == "revise")
    assert set(revise["inputs"]) == {"draft", "critique"}


async def test_router_example_sends_code_questions_to_the_code_branch():
    result, events = await run(example("router"), {"question": "Why does this Python code crash?"})
    assert statuses(events)["docs"] == "skipped"
    assert "programming question" in result.outputs["answer"]
    result, events = await run(example("router"), {"question": "Where is the install guide?"})
    assert statuses(events)["code"] == "skipped"


async def test_fanout_example_runs_three_reviews_then_merges_them():
    _, events = await run(example("fanout"))
    join = next(e for e in of_type(events, "node_finished") if e["node"] == "join")
    assert set(join["output"]["value"]) == {"risk", "cost", "plan"}


async def test_map_example_keeps_item_order():
    result, _ = await run(example("map"))
    texts = example("map")["nodes"][0]["config"]["default"]
    assert len(result.outputs["summaries"]) == len(texts)
    assert all(t in s for t, s in zip(texts, result.outputs["summaries"], strict=True))


async def test_agent_example_uses_the_calculator():
    result, events = await run(example("agent"))
    assert "395" in result.outputs["answer"]
    assert "[calculator(" in "".join(e["text"] for e in of_type(events, "node_delta"))


async def test_loop_example_fixes_until_the_check_passes():
    result, events = await run(example("loop"))
    assert result.outputs["result"].endswith("DONE")
    checks = [e for e in of_type(events, "node_finished") if e["node"] == "check"]
    assert [e["iteration"] for e in checks] == [1, 2]


async def test_evaluate_example_revises_until_the_evaluators_verdict_passes_the_condition():
    result, events = await run(example("evaluate"))
    verdicts = [e["output"]["text"] for e in finished(events, "evaluate")]
    assert verdicts == ["FAIL: end it with the word DONE", "PASS"]
    routes = [list(e["output"]) for e in finished(events, "gate")]
    assert routes == [["revise"], ["accept"]]
    [revised] = finished(events, "revise")
    assert result.outputs == {"result": revised["output"]["text"]}


async def test_evaluate_example_accepts_a_first_draft_that_passes():
    result, events = await run(example("evaluate"), {"task": "a poem that says DONE"})
    assert [list(e["output"]) for e in finished(events, "gate")] == [["accept"]]
    assert statuses(events)["revise"] == "skipped"
    assert "DONE" in result.outputs["result"]


async def test_pipeline_example_uses_a_different_model_per_stage():
    _, events = await run(example("pipeline"))
    sent = {e["node"]: e for e in of_type(events, "node_finished")}
    assert "99.8" in sent["compute"]["output"]["text"]
    assert sent["format"]["output"]["text"].startswith("Subject: About your order")


def plan_of(count: int) -> str:
    """A planner's reply as a model writes it: prose, then one <task> per subtask."""
    tasks = "\n".join(
        f"  <task>\n    <type>style{i}</type>\n    <description>Part {i}</description>\n  </task>"
        for i in range(1, count + 1)
    )
    return f"Here is my plan.\n<tasks>\n{tasks}\n</tasks>"


async def test_orchestrator_example_offline_runs_one_worker_per_task_of_the_echoed_format():
    # The offline model echoes the planner's prompt, whose format shows two tasks.
    result, events = await run(example("orchestrator"))
    finished = next(e for e in of_type(events, "node_finished") if e["node"] == "subtasks")
    assert [t["type"] for t in finished["output"]["value"]] == ["formal", "friendly"]
    assert [r.split("Style: ")[1][:6] for r in result.outputs["results"]] == ["formal", "friend"]


@pytest.mark.parametrize("count", [4, 6])
async def test_orchestrator_example_runs_as_many_workers_as_the_planner_decides(
    anthropic_env, count
):
    anthropic_env.enqueue(FakeResponse(text=plan_of(count)))
    result, _ = await run(example("orchestrator"), model_client=AnthropicClient())
    assert result.status == "succeeded", result.error
    workers = [r["messages"][0]["content"] for r in anthropic_env.message_requests[1:]]
    assert sorted(w.split("Subtask: ")[1] for w in workers) == sorted(
        f"Part {i}" for i in range(1, count + 1)
    )
    assert [r.split("Subtask: ")[1] for r in result.outputs["results"]] == [
        f"Part {i}" for i in range(1, count + 1)
    ]


class Planner(OfflineClient):
    """Answers the planner with a scripted plan; each worker waits until all are running."""

    def __init__(self, plan: str, workers: int):
        super().__init__()
        self.plan = plan
        self.together = asyncio.Barrier(workers)

    async def complete(self, request: ModelRequest, on_text) -> ModelResponse:
        if request.messages[-1]["content"].startswith("Plan how"):
            on_text(self.plan)
            content = [{"type": "text", "text": self.plan}]
            return ModelResponse("offline", content, "end_turn", Usage(1, 1))
        # Only workers running at the same time get past this; one at a time never would.
        try:
            async with asyncio.timeout(10):
                await self.together.wait()
        except TimeoutError:
            raise NodeError("the workers did not all run at once") from None
        return await super().complete(request, on_text)


@pytest.mark.parametrize("count", [4, 6])
async def test_orchestrator_example_runs_its_workers_concurrently(count):
    result, _ = await run(example("orchestrator"), model_client=Planner(plan_of(count), count))
    assert result.status == "succeeded", result.error
    assert len(result.outputs["results"]) == count


async def test_http_example_calls_the_api_and_reshapes_its_json_into_a_value():
    with example_world("http") as (inputs, services):
        result, events = await run(example("http"), inputs, **services)
    assert result.outputs["summary"] == {
        "name": "python/cpython",
        "stars": 65000,
        "language": "Python",
        "about": "The Python programming language",
    }
    [fetched] = finished(events, "fetch")
    assert fetched["output"]["status"] == 200
    assert fetched["output"]["body"]["owner"] == {"login": "python", "id": 1525981}


async def test_http_example_is_refused_where_the_node_is_not_enabled():
    result, _ = await run(example("http"))
    assert result.status == "failed"
    assert "SWITCHYARD_HTTP_NODE_ENABLED=1" in result.error
