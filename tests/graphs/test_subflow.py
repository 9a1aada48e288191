"""The subflow node and flow references on the engine: ports, checks, recursion, usage, cancel."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from graphs.flowfiles import FileFlows
from tests.graphs.support import compiled, finished, flow, node, run, services
from tests.graphs.test_cli import cli
from tests.support.wait import wait_for_async


def child_doc(name: str = "shout") -> dict:
    """text (required) and mark (default "!") -> loud; a template, no model."""
    return flow(
        node("text", "input", name="text"),
        node("mark", "input", name="mark", default="!"),
        node("up", "template", template="{{ text | upper }}{{ mark }}"),
        node("loud", "output", name="loud"),
        edges=[
            ("text", "value", "up", "text"),
            ("mark", "value", "up", "mark"),
            ("up", "text", "loud", "value"),
        ],
        name=name,
    )


def parent_doc(reference: str = "shout", **config) -> dict:
    return flow(
        node("q", "input", name="q"),
        node("call", "subflow", flow=reference, **config),
        node("out", "output", name="a"),
        edges=[("q", "value", "call", "text"), ("call", "loud", "out", "value")],
        name="parent",
    )


def directory(tmp_path: Path, **docs: dict) -> Path:
    for name, doc in docs.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(doc))
    return tmp_path


def flows(tmp_path: Path, chain: tuple[str, ...] = ("parent",), **docs: dict) -> FileFlows:
    return FileFlows(directory(tmp_path, **docs), chain)


def problems(doc: dict, source: FileFlows) -> list[str]:
    from graphs.errors import FlowInvalid

    try:
        compiled(doc, flows=source)
    except FlowInvalid as exc:
        return [str(p) for p in exc.problems]
    return []


async def test_a_subflow_runs_its_flow_and_its_ports_are_that_flows_inputs_and_outputs(tmp_path):
    source = flows(tmp_path, shout=child_doc())
    result, events = await run(parent_doc(), {"q": "hi"}, flows=source)
    assert result.status == "succeeded", result.error
    assert result.outputs == {"a": "HI!"}  # mark, unconnected, took the child's default
    [call] = finished(events, "call")
    assert call["output"] == {"loud": "HI!"}


def test_ports_the_called_flow_lacks_are_refused_naming_the_edge(tmp_path):
    source = flows(tmp_path, shout=child_doc())
    doc = parent_doc()
    doc["edges"][1]["source_port"] = "quiet"
    assert problems(doc, source) == [
        "edge 'call' -> 'out' (0): 'call' has no output port 'quiet' (it has: loud)"
    ]


def test_an_input_without_default_must_be_connected(tmp_path):
    source = flows(tmp_path, shout=child_doc())
    doc = parent_doc()
    doc["edges"][0]["target_port"] = "mark"
    assert problems(doc, source) == [
        "node 'call': the flow's input 'text' has no default: connect an edge into it"
    ]


def test_a_missing_flow_and_a_bad_reference_are_problems_of_the_node_and_field(tmp_path):
    source = flows(tmp_path)
    [missing] = problems(parent_doc("nope"), source)
    assert missing.startswith("node 'call': no flow 'nope' (")
    # No path may leave the flows directory: the reference's character set has no . or /.
    (tmp_path.parent / "secret.json").write_text(json.dumps(child_doc()))
    [traversal] = problems(parent_doc("../secret"), source)
    assert traversal == (
        "node 'call': config.flow: use only letters, digits, _ and -, starting with a letter "
        "or digit (at most 59)"
    )
    from graphs.nodes import NODE_TYPES

    node_type = NODE_TYPES["subflow"]
    config = node_type.Config(flow="nope")
    [problem] = node_type.problems(config, services(flows=source))
    assert problem.field == "flow"


def test_a_flow_that_calls_itself_is_refused_when_checked(tmp_path):
    source = flows(tmp_path, ("parent",), parent=parent_doc("parent"))
    assert problems(parent_doc("parent"), source) == [
        "node 'call': flow parent calls itself: parent -> parent"
    ]


def relay(reference: str) -> dict:
    """q -> a flow that calls `reference` with q, whose output a is its output a."""
    return flow(
        node("q", "input", name="q"),
        node("call", "subflow", flow=reference),
        node("out", "output", name="a"),
        edges=[("q", "value", "call", "q"), ("call", "a", "out", "value")],
    )


def leaf() -> dict:
    return flow(
        node("q", "input", name="q"),
        node("out", "output", name="a"),
        edges=[("q", "value", "out", "value")],
    )


async def test_a_cycle_through_another_flow_fails_the_run_saying_where(tmp_path):
    # a calls b, b calls a: each alone checks (b's call of a is not a's own), the cycle
    # shows when it closes.
    source = flows(tmp_path, ("a",), a=relay("b"), b=relay("a"))
    result, _ = await run(relay("b"), {"q": "x"}, flows=source)
    assert result.status == "failed"
    assert "flow a calls itself: a -> b -> a" in result.error


async def test_nesting_is_capped(tmp_path):
    # level0 calls level1 calls level2 calls level3; a cap of 2 stops the third link.
    docs = {f"level{i}": relay(f"level{i + 1}") for i in range(3)}
    docs["level3"] = leaf()
    root = FileFlows(directory(tmp_path, **docs), ("level0",), max_depth=2)
    result, _ = await run(docs["level0"], {"q": "deep"}, flows=root)
    assert result.status == "failed"
    assert "subflows nest at most 2 deep: level0 -> level1 -> level2 -> level3" in result.error
    deep_enough = FileFlows(tmp_path, ("level0",), max_depth=3)
    result, _ = await run(docs["level0"], {"q": "deep"}, flows=deep_enough)
    assert (result.status, result.outputs) == ("succeeded", {"a": "deep"})


async def test_the_childs_usage_is_the_nodes_and_so_the_runs(tmp_path):
    child = flow(
        node("text", "input", name="text"),
        node("ask", "llm", prompt="Say {{ text }}"),
        node("loud", "output", name="loud"),
        edges=[("text", "value", "ask", "text"), ("ask", "text", "loud", "value")],
    )
    source = flows(tmp_path, shout=child)
    result, events = await run(parent_doc(), {"q": "one two three"}, flows=source)
    assert result.status == "succeeded", result.error
    [call] = finished(events, "call")
    assert call["model"] == "offline"
    assert call["usage"]["input_tokens"] > 0
    assert call["usage"] == result.usage.as_dict()


async def test_a_failing_child_fails_the_node_with_the_childs_error(tmp_path):
    child = child_doc()
    child["nodes"][2]["config"]["template"] = "{{ text | upper }}{{ mark.missing.deeper }}"
    source = flows(tmp_path, shout=child)
    result, _ = await run(parent_doc(), {"q": "x"}, flows=source)
    assert result.status == "failed"
    assert result.error.startswith("node 'call' failed: flow shout failed: node 'up' failed: ")


async def test_cancelling_the_parent_cancels_the_child(tmp_path):
    child = flow(
        node("text", "input", name="text"),
        node("wait", "sleep", seconds=30),
        node("loud", "output", name="loud"),
        edges=[("text", "value", "wait", "value"), ("wait", "value", "loud", "value")],
    )
    from tests.graphs.support import Probe

    probe = Probe()
    source = flows(tmp_path, shout=child)
    handle = compiled(parent_doc(), probe, flows=source).start({"q": "x"})
    await wait_for_async(lambda: probe.running == 1, message="the child's node to start")
    handle.cancel()
    result = await asyncio.wait_for(handle.wait(), 5)
    assert result.status == "cancelled"
    assert probe.cancelled == ["wait"] and probe.running == 0


def test_only_a_subflow_pinned_to_a_version_is_cached():
    from graphs.nodes import NODE_TYPES

    node_type = NODE_TYPES["subflow"]
    assert not node_type.cacheable(node_type.Config(flow="7"), services())
    assert node_type.cacheable(node_type.Config(flow="7", version=3), services())


def test_an_agents_flow_tool_must_name_a_flow_it_can_find(tmp_path):
    source = flows(tmp_path, shout=child_doc())
    agent = flow(node("a", "agent", prompt="go", tools=["flow:shout", "flow:nope", "flow:a/b"]))
    found = problems(agent, source)
    assert len(found) == 2
    assert found[0].startswith("node 'a': tool 'flow:nope': no flow 'nope' (")
    assert found[1].startswith("node 'a': tool 'flow:a/b': flow reference 'a/b' is not valid")


async def test_an_agents_flow_tool_is_described_by_the_flow_and_runs_it(tmp_path):
    source = flows(tmp_path, shout=child_doc())
    agent = flow(
        node("q", "input", name="q"),
        node("a", "agent", prompt="{{ q }}", tools=["flow:shout"]),
        node("out", "output", name="a"),
        edges=[("q", "value", "a", "q"), ("a", "text", "out", "value")],
    )
    # The offline model calls an offered flow once, its prompt as each required input.
    result, _ = await run(agent, {"q": "psst"}, flows=source)
    assert result.status == "succeeded", result.error
    assert result.outputs["a"].endswith("The tools returned: PSST!.")


def test_the_cli_finds_called_flows_beside_the_flow_or_in_flows_dir(tmp_path):
    directory(tmp_path, shout=child_doc(), parent=parent_doc())
    done = cli("run", str(tmp_path / "parent.json"), "--input", "q=hey")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["outputs"] == {"a": "HEY!"}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "parent.json").write_text(json.dumps(parent_doc()))
    done = cli("validate", str(elsewhere / "parent.json"))
    assert done.returncode == 2 and "node 'call': no flow 'shout'" in done.stderr
    done = cli("validate", str(elsewhere / "parent.json"), "--flows", str(tmp_path))
    assert (done.returncode, done.stdout.strip()) == (0, "valid")


async def test_a_failing_flow_tool_goes_back_to_the_model_as_an_error_result(tmp_path):
    broken = child_doc()
    broken["nodes"][2]["config"]["template"] = "{{ text.missing.deeper }}{{ mark }}"
    source = flows(tmp_path, shout=broken)
    agent = flow(
        node("q", "input", name="q"),
        node("a", "agent", prompt="{{ q }}", tools=["flow:shout"]),
        node("out", "output", name="a"),
        edges=[("q", "value", "a", "q"), ("a", "text", "out", "value")],
    )
    result, events = await run(agent, {"q": "psst"}, flows=source)
    # The agent goes on: the model reads the failure and answers.
    assert result.status == "succeeded", result.error
    assert "flow shout failed: node 'up' failed" in result.outputs["a"]
    [finished_agent] = finished(events, "a")
    messages = finished_agent["detail"]["messages"]
    [tool_result] = messages[2]["content"]
    assert tool_result["is_error"] is True


async def test_the_node_finished_of_a_node_that_ran_flows_names_their_runs(tmp_path):
    class Numbered(FileFlows):
        async def run(self, call, services_):
            from dataclasses import replace

            return replace(await super().run(call, services_), run=41)

    source = Numbered(directory(tmp_path, shout=child_doc()), ("parent",))
    _, events = await run(parent_doc(), {"q": "hi"}, flows=source)
    [call] = finished(events, "call")
    assert call["child_runs"] == [41]
    assert "child_runs" not in finished(events, "out")[0]
