"""Templates users write cannot freeze the event loop or exhaust memory: real worker processes.

Budgets are small (half a second) to keep the tests quick; each test gets a loop of its own
(pytest-asyncio), hence a pool of its own, ended with the loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from graphs import sandbox, templating, validate
from graphs.document import load
from graphs.sandbox import SandboxSettings
from tests.graphs.support import compiled, flow, node, of_type
from tests.support.shutdown import ends_cleanly
from tests.support.wait import wait_for_async

ROOT = Path(__file__).parents[2]
QUICK = SandboxSettings(workers=2, timeout_s=0.5, memory_mib=256)
# Long enough for the pool's second worker to start and render while a runaway runs, on a
# loaded machine too (starting one took ~0.45 s at a load of 12, against QUICK's 0.5 s).
PATIENT = SandboxSettings(workers=2, timeout_s=3.0, memory_mib=256)
# A nested loop over a 10,000-character input: 10^8 steps, and no output to speak of.
NESTED_FOR = "{% for a in q %}{% for b in q %}{% if a == b %}{% endif %}{% endfor %}{% endfor %}"
LOOP = "{% for c in q %}[{{ c }}]{% endfor %}"  # not provably linear: goes to the sandbox


def template_flow(template: str, **config) -> dict:
    return flow(
        node("q", "input", name="q"),
        node("t", "template", template=template, **config),
        node("out", "output", name="text"),
        edges=[("q", "value", "t", "q"), ("t", "text", "out", "value")],
    )


async def warm(settings: SandboxSettings = QUICK) -> sandbox.SandboxPool:
    """This loop's pool with a worker started, so no measurement includes starting one."""
    assert await templating.render_async(LOOP, {"q": "ab"}, settings) == "[a][b]"
    return sandbox.pool(settings)


def alive(pid: int) -> bool:
    # A zombie still answers kill(pid, 0); /proc says what state it is in.
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


async def test_a_runaway_template_fails_at_its_budget_while_the_loop_serves_others():
    await warm(PATIENT)
    events: list[dict] = []
    runaway = asyncio.ensure_future(
        compiled(template_flow(NESTED_FOR), sandbox=PATIENT).run({"q": "x" * 10_000}, events.append)
    )

    def started() -> list[dict]:
        return [e for e in of_type(events, "node_started") if e["node"] == "t"]

    await wait_for_async(started, message="'t' to start")
    # Had the render held the loop, nothing else could run until it failed: another render
    # (on the pool's other worker) finishes while the runaway one still runs.
    assert await templating.render_async(LOOP, {"q": "ok"}, PATIENT) == "[o][k]"
    assert not runaway.done()
    result = await runaway
    assert result.status == "failed"
    assert result.error == "node 't' failed: template: template exceeded 3 s"


async def test_a_template_that_allocates_past_the_limit_fails_and_the_pool_keeps_serving():
    await warm()
    with pytest.raises(templating.TemplateProblem) as caught:
        await templating.render_async("{{ q|center(400000000)|length }}", {"q": "hi"}, QUICK)
    assert str(caught.value) == "template exceeded the 256 MiB memory limit"
    # A method call reaches the same allocation, and the same limit.
    with pytest.raises(templating.TemplateProblem, match="256 MiB memory limit"):
        await templating.render_async("{{ q.center(400000000) }}", {"q": "hi"}, QUICK)
    assert await templating.render_async(LOOP, {"q": "ok"}, QUICK) == "[o][k]"
    assert await templating.render_async("{{ q|center(6) }}", {"q": "hi"}, QUICK) == "  hi  "


async def test_the_memory_failure_names_the_node_field():
    doc = template_flow("{{ q|center(400000000)|length }}")
    result = await compiled(doc, sandbox=QUICK).run({"q": "hi"})
    assert result.error == "node 't' failed: template: template exceeded the 256 MiB memory limit"


async def test_a_killed_worker_is_replaced_and_the_next_render_works():
    pool = await warm()
    (first,) = pool.pids
    os.kill(first, signal.SIGKILL)
    assert await templating.render_async(LOOP, {"q": "xy"}, QUICK) == "[x][y]"
    # The dead one is gone, reaped rather than left a zombie.
    await wait_for_async(lambda: not alive(first), timeout=5, message="the dead worker reaped")
    assert first not in pool.pids


async def test_a_timed_out_worker_is_killed_and_replaced():
    pool = await warm()
    (first,) = pool.pids
    with pytest.raises(templating.TemplateProblem, match=r"^template exceeded 0.5 s$"):
        await templating.render_async(NESTED_FOR, {"q": "x" * 10_000}, QUICK)
    assert await templating.render_async(LOOP, {"q": "z"}, QUICK) == "[z]"
    await wait_for_async(lambda: not alive(first), timeout=5, message="the timed-out worker gone")


async def test_concurrent_renders_share_the_pool_and_each_gets_its_own_answer():
    texts = [f"item{i}" for i in range(8)]
    rendered = await asyncio.gather(
        *(templating.render_async(LOOP, {"q": text}, QUICK) for text in texts)
    )
    assert rendered == ["".join(f"[{c}]" for c in text) for text in texts]
    assert len(sandbox.pool(QUICK).pids) <= QUICK.workers


async def test_a_node_timeout_stops_a_sandboxed_render_by_killing_its_worker():
    slow = SandboxSettings(workers=1, timeout_s=30, memory_mib=256)
    pool = await warm(slow)
    (worker,) = pool.pids
    doc = template_flow(NESTED_FOR, timeout_s=0.3)
    result = await compiled(doc, sandbox=slow).run({"q": "x" * 10_000})
    assert result.error == "node 't' failed: timed out after 0.3s"
    await wait_for_async(lambda: not alive(worker), timeout=5, message="the worker killed")


def test_workers_end_with_their_loop():
    with asyncio.Runner() as runner:
        pool = runner.run(warm())
        pids = pool.pids
        assert pids and all(alive(pid) for pid in pids)
    assert not any(alive(pid) for pid in pids)


def test_the_cli_runs_a_sandboxed_template_and_exits_promptly(tmp_path):
    path = tmp_path / "flow.json"
    path.write_text(json.dumps(template_flow(LOOP)))
    done = subprocess.run(
        [sys.executable, "-m", "graphs", "run", str(path), "--input", "q=abc"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,  # a CLI that waited on its sandbox workers would never exit
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["outputs"] == {"text": "[a][b][c]"}


# What renders where -------------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        "Hello {{ who }}!",
        "{{ q | upper }} {{ q | lower | trim }} {{ q | title }} {{ q | capitalize }}",
        "{{ q | default('none') }} {{ q | length }} {{ q | escape }} {{ q | tojson }}",
        "{{ items | join(', ') }} {{ items | first }} {{ items | last }}",
        "{% if q %}{{ q }}{% elif items %}{{ items[0] }}{% else %}-{% endif %}",
        "{{ q ~ '!' }} {{ q if q else 'x' }} {{ q[1:3] }} {{ 'a' in q }}",
        "{{ q | replace('a', 'b') }} {{ q | truncate(5) }} {{ q | center(9) }}",
        "{{ n + 1 }} {{ n * 3 }} {{ n is even }} {{ not q }} {{ -n }} {{ obj.k }}",
    ],
)
def test_templates_that_only_place_their_inputs_render_inline(template):
    values = {"who": "Ada", "q": "abc", "items": ["x", "y"], "n": 4, "obj": {"k": "v"}}
    assert templating.runs_inline(template, values)


@pytest.mark.parametrize(
    "template",
    [
        "{% for c in q %}{{ c }}{% endfor %}",
        "{% macro m() %}x{% endmacro %}{{ m() }}",
        "{% set x = q ~ q %}{{ x }}",
        "{{ q.upper() }}",
        "{{ q | center(n) }}",  # the width is an input: no bound known in advance
        "{{ q | center(400000000) }}",  # a known bound, far past the limit
        "{{ q | tojson(4) }}",
        "{{ q | wordwrap(10) }}",
        "{{ q * n }}",
        "{{ '%s' % q }}",
        "{{ q | map('upper') | join }}",
    ],
)
def test_templates_whose_work_is_not_provably_small_go_to_the_sandbox(template):
    assert not templating.runs_inline(template, {"q": "abc", "n": 3})


def test_large_inputs_send_even_a_simple_template_to_the_sandbox():
    template = "{{ q | upper }}"
    assert templating.runs_inline(template, {"q": "x" * 1000})
    assert not templating.runs_inline(template, {"q": "x" * 1_000_000})
    # Repeating a variable repeats its cost: 2,000 copies of 10 kB is 20 MB of output.
    many = "{{ q }}" * 2000
    assert templating.runs_inline(many, {"q": "x"})
    assert not templating.runs_inline(many, {"q": "x" * 10_000})
    nested = "{{ items }}"
    assert templating.runs_inline(nested, {"items": ["x" * 100] * 10})
    assert not templating.runs_inline(nested, {"items": ["x" * 100_000] * 10})


@pytest.mark.parametrize(
    ("template", "values"),
    [
        ("Hi {{ who | title }}, {{ items | join('; ') }}", {"who": "ada", "items": [1, 2]}),
        ("{{ data | tojson }} {{ data }}", {"data": {"a": [1, "é", None, True, 2.5]}}),
        ("{{ q | escape }} {{ q | truncate(6) }}", {"q": '<b>"quoted" & more</b>'}),
    ],
)
async def test_inline_and_sandbox_render_alike(template, values):
    assert templating.runs_inline(template, values)
    inline = templating.render(template, values)
    assert await sandbox.run("template", {"source": template, "values": values}, QUICK) == inline


async def test_template_errors_from_the_sandbox_read_as_they_do_inline():
    undefined = r"^template error: 'missing' is undefined"
    with pytest.raises(templating.TemplateProblem, match=undefined):
        await templating.render_async("{% for c in missing %}{% endfor %}", {}, QUICK)
    recursive = "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"
    with pytest.raises(templating.TemplateProblem, match="nested or recurses too deeply"):
        await templating.render_async(recursive, {}, QUICK)
    over = "{% for c in q %}{{ q }}{% endfor %}"
    with pytest.raises(templating.TemplateProblem, match="rendered text exceeds 5,000,000"):
        await templating.render_async(over, {"q": "x" * 3000}, QUICK)


def test_deeply_nested_parentheses_are_a_template_problem_not_a_crash():
    source = "{{ " + "(" * 5000 + "x" + ")" * 5000 + " }}"
    with pytest.raises(templating.TemplateProblem, match=r"^template is nested too deeply$"):
        templating.check(source)
    problems = [str(p) for p in validate(load(template_flow(source)))]
    assert problems == ["node 't': template template is nested too deeply"]


# The sandbox as a facility --------------------------------------------------------------


async def test_the_sandbox_runs_named_tasks_on_json_and_refuses_anything_else():
    assert await sandbox.run("echo", {"a": [1, "two", None]}, QUICK) == {"a": [1, "two", None]}
    with pytest.raises(sandbox.SandboxJobFailed, match="no sandbox task 'nope'"):
        await sandbox.run("nope", {}, QUICK)
    with pytest.raises(sandbox.SandboxError, match="values must be JSON"):
        await sandbox.run("echo", {"a": object()}, QUICK)


async def test_the_worker_sees_none_of_the_servers_environment(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "secret-key")
    # The environment is read when a worker starts: this loop's pool starts now.
    leak = "{% for k in q %}{{ k }}{% endfor %}"
    text = await templating.render_async(leak, {"q": ["a"]}, QUICK)
    assert text == "a"
    (pid,) = sandbox.pool(QUICK).pids
    environ = Path(f"/proc/{pid}/environ").read_bytes()
    assert b"secret-key" not in environ


def test_sandbox_limits_come_from_the_environment():
    from graphs.settings import SettingsError, services_from_env

    env = {
        "SWITCHYARD_SANDBOX_WORKERS": "3",
        "SWITCHYARD_SANDBOX_TIMEOUT_S": "0.75",
        "SWITCHYARD_SANDBOX_MEMORY_MIB": "128",
    }
    limits = services_from_env(env).sandbox
    assert (limits.workers, limits.timeout_s, limits.memory_mib) == (3, 0.75, 128)
    assert services_from_env({}).sandbox == SandboxSettings()
    for bad in ("soon", "nan", "inf", "0"):
        with pytest.raises(SettingsError, match="SWITCHYARD_SANDBOX_TIMEOUT_S"):
            services_from_env({"SWITCHYARD_SANDBOX_TIMEOUT_S": bad})


async def test_a_worker_that_dies_mid_job_fails_the_render_and_is_replaced():
    slow = SandboxSettings(workers=1, timeout_s=30, memory_mib=256)
    pool = await warm(slow)
    (worker,) = pool.pids
    render = asyncio.create_task(templating.render_async(NESTED_FOR, {"q": "x" * 10_000}, slow))
    await asyncio.sleep(0.3)
    os.kill(worker, signal.SIGKILL)
    with pytest.raises(templating.TemplateProblem) as caught:
        await render
    assert str(caught.value) == (
        "template stopped its sandbox worker (signal 9); "
        "it may have exceeded the 256 MiB memory limit"
    )
    assert await templating.render_async(LOOP, {"q": "ok"}, slow) == "[o][k]"


# A loop that ends at any moment ------------------------------------------------------

ENDS_WHILE_A_WORKER_STARTS = """
import asyncio, os
from graphs import sandbox

SETTINGS = sandbox.SandboxSettings(workers=1, timeout_s=0.2)
RUNAWAY = "{% for a in q %}{% for b in q %}{% endfor %}{% endfor %}"

async def first_worker_starting(delay):
    # The job is cancelled with the loop while its worker starts (or just after).
    asyncio.get_running_loop().create_task(sandbox.run("echo", {"a": 1}, SETTINGS))
    await asyncio.sleep(delay)

async def replacement_starting():
    # The runaway job's worker is killed at its budget and a replacement starts in the
    # background: the loop ends while it starts.
    args = {"source": RUNAWAY, "values": {"q": "x" * 10_000}}
    try:
        await sandbox.run("template", args, SETTINGS)
    except sandbox.SandboxTimeout:
        return
    raise AssertionError("the runaway render finished")

for delay in (0, 0.001, 0.005, 0.02, 0.05, 0.1):
    asyncio.run(first_worker_starting(delay))
for _ in range(3):
    asyncio.run(replacement_starting())
try:
    os.waitpid(-1, os.WNOHANG)  # returns for a child still running or not yet reaped
except ChildProcessError:
    print("ok")
"""


def test_a_loop_that_ends_while_a_worker_starts_leaves_no_process_or_pipe_behind():
    # On Python 3.11 a task cancelled while asyncio connected a new process's pipes waited
    # forever, and with it the loop's shutdown (300 s at a test's teardown under load).
    assert ends_cleanly(ENDS_WHILE_A_WORKER_STARTS) == (0, "", "ok\n")
