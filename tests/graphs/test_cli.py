"""``python -m graphs``: validate and run from the command line, as a user would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.support.http_server import github_stand_in
from tests.support.wait import wait_for

ROOT = Path(__file__).parents[2]
EXAMPLES = ROOT / "examples"


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    return subprocess.run(
        [sys.executable, "-m", "graphs", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=environment | (env or {}),
    )


def write(tmp_path: Path, doc: dict | str) -> str:
    path = tmp_path / "flow.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return str(path)


def test_validate_accepts_a_good_flow():
    done = cli("validate", str(EXAMPLES / "loop.json"))
    assert (done.returncode, done.stdout.strip()) == (0, "valid")


def test_validate_prints_one_line_per_problem_and_exits_2(tmp_path):
    doc = json.loads((EXAMPLES / "chain.json").read_text())
    doc["nodes"][1]["type"] = "nope"
    doc["nodes"][2]["config"]["temprature"] = 1
    doc["edges"].append(
        {"source": "final", "target": "ghost", "source_port": "x", "target_port": "y"}
    )
    done = cli("validate", write(tmp_path, doc))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1  # shape problems come first: the dangling edge
    assert "dangling edge" in lines[0]
    doc["edges"].pop()
    lines = cli("validate", write(tmp_path, doc)).stderr.strip().splitlines()
    # Named as the canvas names them: label, then key.
    assert lines[0].startswith("node \"Draft\" (draft): unknown node type 'nope'")
    assert "node \"Critique\" (critique): unknown config key 'temprature'" in lines
    assert "Traceback" not in cli("validate", write(tmp_path, doc)).stderr


def test_validate_prints_warnings_but_a_flow_with_only_warnings_is_valid(tmp_path):
    from tests.graphs.test_loops import evaluator_optimizer

    done = cli("validate", write(tmp_path, evaluator_optimizer()))
    assert (done.returncode, done.stdout.strip()) == (0, "valid")
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("warning: node 'llm_call_generator': the loop ")
    assert "it starts at 'llm_call_generator'" in line


def test_validate_refuses_bad_json_without_a_traceback(tmp_path):
    for text in ("[" * 100_000, "{not json", '"\\ud800"'):
        done = cli("validate", write(tmp_path, text))
        assert done.returncode == 2
        assert "Traceback" not in done.stderr and done.stderr.strip()


def test_missing_file_is_a_usage_error():
    done = cli("validate", "/nonexistent/flow.json")
    assert done.returncode == 2 and "cannot read /nonexistent/flow.json" in done.stderr


def test_run_prints_the_result_as_the_last_line_and_exits_0():
    done = cli("run", str(EXAMPLES / "agent.json"), "--input", "question=What is 6*7?")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == "succeeded"
    assert "42" in result["outputs"]["answer"]


def test_input_values_parse_as_json_when_they_can(tmp_path):
    doc = {
        "graph": {"name": "echo"},
        "nodes": [
            {"id": "a", "type": "input", "config": {"name": "a"}},
            {"id": "b", "type": "input", "config": {"name": "b"}},
            {"id": "oa", "type": "output", "config": {"name": "a"}},
            {"id": "ob", "type": "output", "config": {"name": "b"}},
        ],
        "edges": [
            {"source": "a", "target": "oa", "source_port": "value", "target_port": "value"},
            {"source": "b", "target": "ob", "source_port": "value", "target_port": "value"},
        ],
    }
    done = cli("run", write(tmp_path, doc), "--inputs", '{"a": "x"}', "--input", "b=[1, 2]")
    assert json.loads(done.stdout.splitlines()[-1])["outputs"] == {"a": "x", "b": [1, 2]}
    done = cli("run", write(tmp_path, doc), "--input", "a=not json", "--input", "b=3")
    assert json.loads(done.stdout.splitlines()[-1])["outputs"] == {"a": "not json", "b": 3}


def test_events_go_to_a_file_as_json_lines(tmp_path):
    events = tmp_path / "events.jsonl"
    done = cli("run", str(EXAMPLES / "router.json"), "--events", str(events))
    assert done.returncode == 0
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    assert [e["seq"] for e in lines] == list(range(1, len(lines) + 1))
    assert lines[-1]["type"] == "run_finished"
    assert {"node_skipped"} <= {e["type"] for e in lines}


def test_the_evaluate_example_runs_its_condition_router_from_the_command_line(tmp_path):
    assert cli("validate", str(EXAMPLES / "evaluate.json")).stdout.strip() == "valid"
    # Offline the evaluator passes every draft: this condition also wants one written
    # with feedback in view, so the first goes back round the loop.
    doc = json.loads((EXAMPLES / "evaluate.json").read_text())
    gate = next(n for n in doc["nodes"] if n["id"] == "gate")
    gate["config"]["conditions"][0]["expression"] = (
        'verdict == "PASS" and "earlier attempts" in input.draft'
    )
    events = tmp_path / "events.jsonl"
    done = cli("run", write(tmp_path, doc), "--events", str(events))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["status"] == "succeeded"
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    gate = [e for e in lines if e["type"] == "node_finished" and e["node"] == "gate"]
    assert [list(e["output"]) for e in gate] == [["revise"], ["accept"]]


def test_a_broken_condition_is_refused_by_validate_naming_node_rule_and_route(tmp_path):
    doc = json.loads((EXAMPLES / "evaluate.json").read_text())
    gate = next(n for n in doc["nodes"] if n["id"] == "gate")
    gate["config"]["conditions"][0]["expression"] = 'verdict = "PASS"'
    done = cli("validate", write(tmp_path, doc))
    assert done.returncode == 2
    problems = [line for line in done.stderr.splitlines() if not line.startswith("warning: ")]
    assert problems == [
        "node \"Passes?\" (gate): rule 1 (route 'accept'): "
        "syntax error: unexpected '=' after the expression"
    ]


def test_events_to_stdout_keep_the_result_last():
    done = cli("run", str(EXAMPLES / "chain.json"), "--events", "-")
    lines = done.stdout.strip().splitlines()
    assert json.loads(lines[0])["type"] == "run_started"
    assert json.loads(lines[-2])["type"] == "run_finished"
    assert set(json.loads(lines[-1])) == {"status", "outputs"}


def test_missing_input_exits_2_naming_it(tmp_path):
    doc = json.loads((EXAMPLES / "chain.json").read_text())
    del doc["nodes"][0]["config"]["default"]
    done = cli("run", write(tmp_path, doc))
    assert done.returncode == 2
    assert "node 'topic': input 'topic' is required and has no default" in done.stderr


def test_a_failed_run_exits_1_with_the_error():
    done = cli(
        "run",
        str(EXAMPLES / "agent.json"),
        "--input",
        "question=x",
        env={"ANTHROPIC_API_KEY": "k", "ANTHROPIC_BASE_URL": "http://127.0.0.1:9"},
    )
    assert done.returncode == 1
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["status"] == "failed" and "agent" in result["error"]


def test_bad_usage_exits_2(tmp_path):
    assert cli("run", str(EXAMPLES / "chain.json"), "--input", "novalue").returncode == 2
    assert cli("run", str(EXAMPLES / "chain.json"), "--inputs", "[1]").returncode == 2
    assert cli("frobnicate").returncode == 2


def test_ctrl_c_cancels_the_run_cleanly(tmp_path):
    events = tmp_path / "events.jsonl"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "graphs",
            "run",
            str(EXAMPLES / "chain.json"),
            "--events",
            str(events),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment | {"SWITCHYARD_OFFLINE_DELAY_MS": "200"},
    )
    try:
        wait_for(
            lambda: events.exists() and "node_delta" in events.read_text(),
            timeout=30,
            message="the run's first node_delta in its event file",
        )
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:  # a failure above: leave no run behind
            process.kill()
            process.wait(timeout=10)
    assert process.returncode == 1, stderr
    assert "Traceback" not in stderr
    assert json.loads(stdout.splitlines()[-1])["status"] == "cancelled"
    last = json.loads(events.read_text().splitlines()[-1])
    assert last["type"] == "run_finished" and last["status"] == "cancelled"


def test_run_parses_the_planners_reply_into_the_workers(tmp_path):
    events = tmp_path / "events.jsonl"
    done = cli("run", str(EXAMPLES / "orchestrator.json"), "--events", str(events))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert [r.split("Style: ")[1].split()[0] for r in result["outputs"]["results"]] == [
        "formal",
        "friendly",
    ]
    parsed = [
        e
        for e in map(json.loads, events.read_text().splitlines())
        if e["type"] == "node_finished" and e["node"] == "subtasks"
    ]
    assert [t["type"] for t in parsed[0]["output"]["value"]] == ["formal", "friendly"]


def test_a_reply_parse_cannot_read_fails_the_run_naming_what_it_expected(tmp_path):
    doc = json.loads((EXAMPLES / "orchestrator.json").read_text())
    doc["nodes"][2]["config"] = {"mode": "xml", "tags": ["step"]}
    done = cli("run", write(tmp_path, doc))
    assert done.returncode == 1
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["error"].startswith(
        'node "Subtasks" (subtasks) failed: no <step>...</step> element found'
    )


def json_template_flow(template: str) -> dict:
    return {
        "graph": {"name": "plan"},
        "nodes": [
            {"id": "topic", "type": "input", "config": {"name": "topic"}},
            {"id": "plan", "type": "template", "config": {"output": "json", "template": template}},
            {"id": "out", "type": "output", "config": {"name": "plan"}},
        ],
        "edges": [
            {"source": "topic", "target": "plan", "source_port": "value", "target_port": "topic"},
            {"source": "plan", "target": "out", "source_port": "value", "target_port": "value"},
        ],
    }


def test_run_prints_a_templates_json_output_as_json_not_as_a_string(tmp_path):
    doc = json_template_flow('{"topic": {{ topic | tojson }}, "steps": [1, 2.5, null]}')
    done = cli("run", write(tmp_path, doc), "--input", 'topic=é "q"')
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["outputs"] == {"plan": {"topic": 'é "q"', "steps": [1, 2.5, None]}}


def test_a_template_whose_json_output_is_not_json_exits_1_naming_the_node(tmp_path):
    done = cli("run", write(tmp_path, json_template_flow("{{ topic }}")), "--input", "topic=hi")
    assert done.returncode == 1
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == "failed"
    assert result["error"].startswith("node 'plan' failed: output is json, but the rendered")


def test_a_failed_run_names_the_node_by_its_label_with_its_key(tmp_path):
    doc = json_template_flow("{{ topic }}")
    doc["nodes"][1]["label"] = "Make the plan"
    done = cli("run", write(tmp_path, doc), "--input", "topic=hi")
    assert done.returncode == 1
    error = json.loads(done.stdout.strip().splitlines()[-1])["error"]
    assert error.startswith('node "Make the plan" (plan) failed: output is json, but')


def test_run_calls_an_allow_listed_api_from_the_command_line():
    with github_stand_in() as api:
        env = {
            "SWITCHYARD_HTTP_NODE_ENABLED": "1",
            "SWITCHYARD_HTTP_ALLOW_HOSTS": f"127.0.0.1:{api.port}",
        }
        done = cli(
            "run", "examples/http.json", "--input", f"api=http://127.0.0.1:{api.port}", env=env
        )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["outputs"]["summary"]["stars"] == 65000


def test_a_malformed_allow_list_stops_the_cli_naming_the_setting():
    env = {"SWITCHYARD_HTTP_ALLOW_HOSTS": "https://api.internal/"}
    done = cli("run", "examples/http.json", env=env)
    assert done.returncode == 2
    assert "SWITCHYARD_HTTP_ALLOW_HOSTS: 'https://api.internal/' is not a host" in done.stderr
