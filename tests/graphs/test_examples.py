"""Every example flow runs offline, and does what its pattern promises."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from graphs.document import load
from graphs.errors import NodeError
from graphs.llm.anthropic import AnthropicClient
from graphs.llm.offline import OfflineClient
from graphs.llm.types import ModelRequest, ModelResponse, Usage
from graphs.validation import warnings
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
        "classify",
        "http",
        "chat",
        "agent_flow",
        "api_pipeline",
        "subflow",
    }


@pytest.mark.parametrize("name", sorted(p.stem for p in EXAMPLES.glob("*.json")))
async def test_each_example_runs_offline_and_succeeds(name):
    with example_world(name) as (inputs, services):
        result, events = await run(example(name), inputs, **services)
    assert result.status == "succeeded", result.error
    assert result.outputs
    assert events[-1]["type"] == "run_finished"


async def test_subflow_example_runs_the_triage_flow_as_a_child_and_replies_from_it():
    with example_world("subflow") as (inputs, services):
        result, events = await run(example("subflow"), inputs, **services)
    assert result.status == "succeeded", result.error
    reply = next(e for e in of_type(events, "node_started") if e["node"] == "reply")
    assert set(reply["inputs"]) == {"answer", "reason"}
    assert reply["inputs"]["answer"]


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


def verdict(verdict: str, feedback: str) -> FakeResponse:
    return FakeResponse(text=json.dumps({"verdict": verdict, "feedback": feedback}))


async def test_evaluate_example_revises_with_every_attempt_and_its_feedback_in_view(
    anthropic_env,
):
    anthropic_env.enqueue(
        FakeResponse(text="Queues wait"),
        verdict("FAIL", "A haiku has three lines."),
        FakeResponse(text="Queues wait\nin line"),
        verdict("FAIL", "Count 5, 7, 5 syllables."),
        FakeResponse(
            text="Tasks wait in a row\nworkers take them one by one\nthe queue empties out"
        ),
        verdict("PASS", ""),
    )
    result, events = await run(example("evaluate"), model_client=AnthropicClient())
    assert result.status == "succeeded", result.error
    assert result.outputs == {
        "result": "Tasks wait in a row\nworkers take them one by one\nthe queue empties out"
    }
    assert [list(e["output"]) for e in finished(events, "gate")] == [
        ["revise"],
        ["revise"],
        ["accept"],
    ]
    sent = anthropic_env.message_requests
    generator = [r["messages"][0]["content"] for r in sent[0::2]]
    assert "earlier attempts" not in generator[0]
    # Each generation sees every attempt so far, with its feedback, in order.
    assert (
        "<attempt>\nQueues wait\n</attempt>\n<feedback>\nA haiku has three lines.\n</feedback>"
        in generator[1]
    )
    assert "Count 5, 7, 5" not in generator[1]
    third = generator[2]
    assert third.index("A haiku has three lines.") < third.index("<attempt>\nQueues wait\nin line")
    assert third.index("in line\n</attempt>") < third.index("Count 5, 7, 5 syllables.")
    # The evaluator answers in its schema (structured outputs), which the router reads.
    schema = sent[1]["output_config"]["format"]["schema"]
    assert schema["properties"]["verdict"]["enum"] == ["PASS", "FAIL"]
    assert [
        e["inputs"]["verdict"] for e in of_type(events, "node_started") if e["node"] == "gate"
    ] == [
        "FAIL",
        "FAIL",
        "PASS",
    ]


async def test_evaluate_example_starts_at_the_generator_and_accepts_a_first_draft_that_passes():
    assert warnings(load(example("evaluate"))) == []
    result, events = await run(example("evaluate"), {"task": "a limerick"})
    assert [list(e["output"]) for e in finished(events, "gate")] == [["accept"]]
    [draft] = finished(events, "generate")
    assert result.outputs == {"result": draft["output"]["text"]}
    [started] = [e for e in of_type(events, "node_started") if e["node"] == "generate"]
    assert started["inputs"] == {"task": "a limerick", "attempts": []}


async def test_evaluate_example_stops_after_four_drafts_that_all_fail(anthropic_env):
    for n in range(4):
        anthropic_env.enqueue(FakeResponse(text=f"draft {n}"), verdict("FAIL", f"no {n}"))
    result, _ = await run(example("evaluate"), model_client=AnthropicClient())
    assert result.status == "failed"
    assert result.error == 'node "Generate" (generate) failed: exceeded max_iterations=4'


@pytest.mark.parametrize(
    ("ticket", "team"),
    [
        ("My invoice shows a billing error", "billing"),
        ("The app crashes: a technical fault", "technical"),
        ("What are your opening hours?", "general"),
    ],
)
async def test_classify_example_offline_sends_the_ticket_to_the_team_its_category_names(
    ticket, team
):
    result, events = await run(example("classify"), {"ticket": ticket})
    assert result.status == "succeeded", result.error
    [routed] = finished(events, "route")
    assert routed["output"] == {team: ticket}
    seen = statuses(events)
    assert [t for t in ("billing", "technical", "general") if seen[t] == "finished"] == [team]


async def test_classify_example_routes_on_the_models_structured_category(anthropic_env):
    # The reason mentions billing; only the category field decides.
    anthropic_env.enqueue(
        FakeResponse(
            text=json.dumps(
                {"category": "technical", "reason": "Not billing: the app fails to start."}
            )
        ),
        FakeResponse(text="Reinstall the app."),
    )
    ticket = "I paid, and now the app will not start"
    result, events = await run(
        example("classify"), {"ticket": ticket}, model_client=AnthropicClient()
    )
    assert result.outputs == {
        "answer": "Reinstall the app.",
        "reason": "Not billing: the app fails to start.",
    }
    classify, handler = anthropic_env.message_requests
    category = classify["output_config"]["format"]["schema"]["properties"]["category"]
    assert category["enum"] == ["general", "billing", "technical"]
    assert handler["system"] == "You are a support engineer on a customer support team."
    assert ticket in handler["messages"][0]["content"]
    assert statuses(events)["billing"] == "skipped"


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


async def test_orchestrator_example_gives_every_worker_the_original_task(anthropic_env):
    anthropic_env.enqueue(FakeResponse(text=plan_of(3)))
    task = "Describe a bicycle bell"
    result, _ = await run(example("orchestrator"), {"task": task}, model_client=AnthropicClient())
    assert result.status == "succeeded", result.error
    workers = [r["messages"][0]["content"] for r in anthropic_env.message_requests[1:]]
    assert len(workers) == 3
    assert all(f"Task: {task}\nStyle: style" in w for w in workers)


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


async def test_agent_flow_calls_the_triage_flow_as_a_tool_and_answers_from_its_outputs(
    anthropic_env,
):
    """The agent sees the classify flow as a tool described by the flow, each call runs
    that flow as a child, its outputs come back as the tool result, and the child's tokens
    count in the agent's."""
    from graphs.flowfiles import FileFlows

    ticket = "I was charged twice for my subscription this month"
    anthropic_env.enqueue(FakeResponse(tool_uses=[("flow_classify", {"ticket": ticket})]))
    anthropic_env.enqueue(FakeResponse(text='{"category": "billing", "reason": "a charge"}'))
    # The specialist's answer is long, so its tokens are plain to see in the agent's.
    answer = "Your refund is on its way. " * 20
    anthropic_env.enqueue(FakeResponse(text=answer))
    anthropic_env.enqueue(FakeResponse(text="We refund the second charge."))
    flows = FileFlows(EXAMPLES, ("agent_flow",))
    result, events = await run(
        example("agent_flow"), {}, model_client=AnthropicClient(), flows=flows
    )
    assert result.status == "succeeded", result.error
    assert result.outputs == {"reply": "We refund the second charge."}
    requests = [r.body for r in anthropic_env.requests if r.path.endswith("/messages")]
    [tool] = requests[0]["tools"]
    assert tool["name"] == "flow_classify"
    assert tool["description"].startswith("Routing with a structured classification")
    assert list(tool["input_schema"]["properties"]) == ["ticket"]
    # The child's two model calls ran between the agent's two turns, on the ticket.
    assert ticket in json.dumps(requests[1]["messages"])
    results = [
        block
        for block in requests[3]["messages"][-1]["content"]
        if block.get("type") == "tool_result"
    ]
    assert json.loads(results[0]["content"]) == {"answer": answer, "reason": "a charge"}
    [agent] = finished(events, "agent")
    # The agent's own replies are about 15 words; the child's specialist wrote 120.
    assert agent["usage"]["output_tokens"] >= len(answer.split())


async def test_api_pipeline_example_reshapes_the_apis_json_in_sandboxed_python():
    with example_world("api_pipeline") as (inputs, services):
        result, events = await run(example("api_pipeline"), inputs, **services)
    assert result.status == "succeeded", result.error
    assert result.outputs["summary"] == {
        "name": "python/cpython",
        "owner": "python",
        "language": "Python",
        "stars": 65000,
        "forks_per_100_stars": 47.7,
    }
    [fetched] = finished(events, "fetch")
    [reshaped] = finished(events, "reshape")
    # The code node got the decoded body, and what it printed reached the inspector.
    started = next(e for e in of_type(events, "node_started") if e["node"] == "reshape")
    assert started["inputs"]["repo"] == fetched["output"]["body"]
    assert reshaped["detail"] == {"stdout": "python/cpython: 65000 stars, 31000 forks\n"}
