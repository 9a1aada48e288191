"""The command line imports what a flow needs, when it needs it.

Start-up time is the benchmark's business (``bench/cli_start.py``); these check the
behaviour behind it, in a fresh interpreter each: which modules a command has loaded when
it is done. A flow without model nodes never loads the Anthropic SDK, even with a key set,
nor the modules of node types it does not use; checking a flow loads no asyncio; a flow
with model nodes still reaches the model through the SDK. And what start-up made is
frozen out of the garbage collector's passes, which run again once the command starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.cli_start import FREE_FLOW

ROOT = Path(__file__).parents[2]

# Runs the command line in-process, then prints the modules it loaded as the last line.
PROBE = """
import json, sys
from graphs.cli import main
status = main(sys.argv[1:])
print(json.dumps(sorted(sys.modules)))
sys.exit(status)
"""

# The bench times the same model-free flow that this test checks the imports of.
MODEL_FREE = FREE_FLOW


def probe(*args: str, base_url: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run ``python -m graphs ARGS`` with a key set; its output and its loaded modules."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    env |= {"ANTHROPIC_API_KEY": "test-key", "ANTHROPIC_BASE_URL": base_url}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        # Generous: loading the SDK on a machine shared with other work can take a minute.
        timeout=300,
        env=env,
    )
    *_, modules = done.stdout.strip().splitlines()
    return done, set(json.loads(modules))


def sdk(modules: set[str]) -> set[str]:
    return {m for m in modules if m.split(".")[0] in ("anthropic", "httpx", "httpx2")}


def test_validating_a_model_free_flow_with_a_key_set_loads_no_sdk_nor_unused_node_types(
    tmp_path, fake_anthropic
):
    flow = tmp_path / "route.json"
    flow.write_text(json.dumps(MODEL_FREE))
    done, modules = probe("validate", str(flow), base_url=fake_anthropic.url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "valid"
    assert sdk(modules) == set()
    node_modules = {m for m in modules if m.startswith("graphs.nodes.")}
    # Its own types (router's model mode lives in modelcall), and nothing else.
    assert {"graphs.nodes.io", "graphs.nodes.template", "graphs.nodes.router"} <= node_modules
    assert node_modules.isdisjoint(
        {"graphs.nodes.agent", "graphs.nodes.http", "graphs.nodes.code", "graphs.nodes.map"}
    )
    # validate runs nothing, so it loads none of the executor either, nor asyncio, nor
    # the sandbox's worker pool (the default limits live apart, in graphs.limits).
    assert modules.isdisjoint({"graphs.executor", "asyncio", "graphs.sandbox", "graphs.workers"})


def test_running_a_model_free_flow_with_a_key_set_loads_no_sdk(tmp_path, fake_anthropic):
    flow = tmp_path / "route.json"
    flow.write_text(json.dumps(MODEL_FREE))
    done, modules = probe("run", str(flow), base_url=fake_anthropic.url)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[0])
    assert result == {"status": "succeeded", "outputs": {"code": "Question: a bug in my code"}}
    assert sdk(modules) == set()
    assert fake_anthropic.requests == []
    # Its one template renders inline: no sandbox pool is started, nor its module loaded.
    assert "graphs.sandbox" not in modules
    # Nor the node types it does not use, the code sandbox, or the MCP client: the run's
    # MCP sessions are made for the agents that reach them, and it has none.
    node_modules = {m for m in modules if m.startswith("graphs.nodes.")}
    assert node_modules.isdisjoint(
        {"graphs.nodes.agent", "graphs.nodes.http", "graphs.nodes.code", "graphs.nodes.map"}
    )
    assert modules.isdisjoint({"graphs.codebox", "graphs.tools.mcp", "mcp"})


# Runs ``python -m graphs ARGS`` as the command line does (graphs/__main__.py), and says on
# the way out whether the garbage collector was on and how many objects it had frozen.
MAIN_PROBE = """
import atexit, gc, json, runpy, sys
atexit.register(lambda: print(json.dumps([gc.isenabled(), gc.get_freeze_count()])))
sys.argv = ["graphs", *sys.argv[1:]]
runpy.run_module("graphs", run_name="__main__")
"""


def test_the_command_line_freezes_what_start_up_made_and_collects_garbage_while_it_runs(
    tmp_path,
):
    flow = tmp_path / "route.json"
    flow.write_text(json.dumps(MODEL_FREE))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    done = subprocess.run(
        [sys.executable, "-c", MAIN_PROBE, "run", str(flow)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    result, collector = done.stdout.strip().splitlines()
    assert json.loads(result) == {
        "status": "succeeded",
        "outputs": {"code": "Question: a bug in my code"},
    }
    enabled, frozen = json.loads(collector)
    # On while the flow runs, so a long run's garbage goes as ever; and networkx, pydantic,
    # Jinja and the engine's modules (tens of thousands of objects) out of its passes.
    assert enabled is True
    assert frozen > 20_000


def test_a_flow_with_a_model_node_still_calls_the_model_through_the_sdk(tmp_path, fake_anthropic):
    flow = tmp_path / "ask.json"
    ask = {"id": "ask", "type": "llm", "config": {"prompt": "#fake:reply=hello\n{{ q }}"}}
    nodes = [
        {"id": "q", "type": "input", "config": {"name": "q", "default": "hi"}},
        ask,
        {"id": "out", "type": "output", "config": {"name": "answer"}},
    ]
    edges = [
        {"source": "q", "target": "ask", "source_port": "value", "target_port": "q"},
        {"source": "ask", "target": "out", "source_port": "text", "target_port": "value"},
    ]
    flow.write_text(json.dumps({"graph": {"name": "ask"}, "nodes": nodes, "edges": edges}))
    done, modules = probe("run", str(flow), base_url=fake_anthropic.url)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[0])
    assert result["outputs"] == {"answer": "hello"}
    assert {"anthropic", "httpx2"} <= sdk(modules)
    assert len(fake_anthropic.requests) == 1
