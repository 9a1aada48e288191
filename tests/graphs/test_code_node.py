"""The ``code`` node: the author's Python in a real bubblewrap sandbox, and the escapes it stops.

Every job here runs in a real sandboxed process (bwrap, seccomp, rlimits): nothing is
mocked. Each escape is tried beside an ordinary job, which must succeed meanwhile: the
server's loop keeps serving other users while one user's code misbehaves.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from graphs import codebox
from graphs.codebox import CodeSettings
from graphs.nodes import NODE_TYPES
from graphs.sandbox import SandboxError
from tests.graphs.support import finished, flow, node, run
from tests.support.shutdown import ends_cleanly

ROOT = Path(__file__).parents[2]
# Budgets generous enough for a loaded machine; the CPU limit ends a busy loop first.
LIMITS = CodeSettings(workers=3, spares=1, timeout_s=30, cpu_s=2, stdout_chars=100_000)
CODE = NODE_TYPES["code"]


@pytest.fixture(autouse=True)
async def _pools_closed():
    # Every worker is waited for before the test's loop closes.
    yield
    for pool in list(codebox._pools.get(asyncio.get_running_loop(), {}).values()):
        await pool.close()


def main_of(body: str, params: str = "") -> str:
    return f"def main({params}):\n" + textwrap.indent(textwrap.dedent(body), "    ")


async def sandboxed(body: str, settings: CodeSettings = LIMITS, **inputs) -> codebox.CodeResult:
    return await codebox.run(main_of(body, ", ".join(inputs)), inputs, ["out"], settings)


async def ordinary_job(settings: CodeSettings = LIMITS) -> None:
    result = await sandboxed("return {'out': sum(range(n))}", settings, n=10)
    assert result.outputs == {"out": 45}


async def escape(body: str, settings: CodeSettings = LIMITS, *, still_running=False) -> str:
    """Try ``body`` while an ordinary job runs; return how the escape failed."""
    attempt = asyncio.ensure_future(sandboxed(body, settings))
    await ordinary_job(settings)
    if still_running:
        # The ordinary job finished while the runaway one still held its sandbox.
        assert not attempt.done()
    with pytest.raises(SandboxError) as caught:
        await asyncio.wait_for(attempt, 120)  # a hang guard only
    return str(caught.value)


# ---- the node ----------------------------------------------------------------------------


def code_flow(code: str, outputs: list[str], **config) -> dict:
    return flow(
        node("text", "input", name="text"),
        node("code", "code", code=code, outputs=outputs, **config),
        node("out", "output", name="value"),
        edges=[("text", "value", "code", "text"), ("code", outputs[0], "out", "value")],
    )


async def test_the_default_node_counts_words_and_its_ports_follow_main():
    doc = code_flow(CODE.default_config["code"], ["count", "words"])
    result, events = await run(doc, {"text": "to be or not"}, code=LIMITS)
    assert result.status == "succeeded", result.error
    assert result.outputs == {"value": 4}
    assert finished(events, "code")[0]["output"] == {"count": 4, "words": ["to", "be", "or", "not"]}


async def test_what_main_prints_goes_to_the_inspector():
    code = "def main(text):\n    print('got', text)\n    return {'upper': text.upper()}\n"
    result, events = await run(code_flow(code, ["upper"]), {"text": "hi"}, code=LIMITS)
    assert result.outputs == {"value": "HI"}
    assert finished(events, "code")[0]["detail"] == {"stdout": "got hi\n"}


async def test_json_values_cross_both_ways():
    code = "def main(text):\n    return {'shape': {'n': len(text['items']), 'ok': True}}\n"
    doc = code_flow(code, ["shape"])
    result, _ = await run(doc, {"text": {"items": [1, 2.5, None]}}, code=LIMITS)
    assert result.outputs == {"value": {"n": 3, "ok": True}}


async def test_an_exception_fails_the_node_with_its_traceback_of_the_users_lines():
    code = "def main(text):\n    helper = {}\n    return {'x': helper['missing']}\n"
    result, _ = await run(code_flow(code, ["x"]), {"text": "t"}, code=LIMITS)
    assert result.status == "failed" and result.failed_node == "code"
    assert result.error == (
        "node 'code' failed: Traceback (most recent call last):\n"
        '  File "<code>", line 3, in main\n'
        "    return {'x': helper['missing']}\n"
        "                 ~~~~~~^^^^^^^^^^^\n"
        "KeyError: 'missing'\n"
    )


async def test_a_result_missing_a_declared_output_or_not_json_fails_clearly():
    result, _ = await run(code_flow("def main(text):\n    return {}", ["x"]), {"text": "t"})
    assert result.error.endswith("KeyError: \"main's result lacks the declared outputs ['x']\"\n")
    not_json = "def main(text):\n    return {'x': {1, 2}}"
    result, _ = await run(code_flow(not_json, ["x"]), {"text": "t"}, code=LIMITS)
    assert result.error.startswith("node 'code' failed: main returned a non-JSON value")


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("def main(:", "line 1: invalid syntax"),
        ("x = 1", "defines no function main(...) at its top level"),
        ("def main(**kw): pass", "main takes **kwargs: name each input port as a parameter"),
        ("async def main(): pass", "main must be a plain def, not async def"),
    ],
)
def test_code_that_cannot_run_is_a_problem_on_the_code_field(code, message):
    config = CODE.Config.model_validate({"code": code, "outputs": ["x"]})
    assert [(p.field, p.message) for p in CODE.problems(config, None)] == [("code", message)]


def test_outputs_must_be_port_names():
    with pytest.raises(ValueError, match="output 'a b' must be a name"):
        CODE.Config.model_validate({"outputs": ["a b"]})
    with pytest.raises(ValueError, match="outputs must be unique"):
        CODE.Config.model_validate({"outputs": ["a", "a"]})


async def test_each_job_gets_a_fresh_process_so_nothing_leaks_to_the_next():
    first = await sandboxed(
        "import builtins, os\nbuiltins.len = lambda x: -1\nopen('left', 'w').write('x')\n"
        "return {'out': os.getpid()}"
    )
    second = await sandboxed("import os\nreturn {'out': [len('ab'), os.listdir('.')]}")
    assert second.outputs == {"out": [2, []]}
    assert first.outputs["out"] > 0


# ---- the escapes -------------------------------------------------------------------------


async def test_reading_etc_passwd_fails():
    failed = await escape("return {'out': open('/etc/passwd').read()}")
    assert failed.endswith(
        "FileNotFoundError: [Errno 2] No such file or directory: '/etc/passwd'\n"
    )


async def test_the_apps_database_and_source_are_not_there(tmp_path):
    database = ROOT / "var" / "switchyard.sqlite3"
    for path in [database, ROOT / "graphs" / "settings.py", tmp_path]:
        failed = await escape(f"return {{'out': open({str(path)!r}, 'rb').read(10)}}")
        assert "FileNotFoundError: [Errno 2] No such file or directory" in failed
    listed = await sandboxed("import os\nreturn {'out': sorted(os.listdir('/'))}")
    top = ["dev", "lib", "lib64", "proc", "root", "sandbox", "scratch", "usr"]
    # /root: only the interpreter's own prefix (here under /root/.pyenv) is mounted in it.
    assert [name for name in listed.outputs["out"] if name != "root"] == [
        name for name in top if name != "root"
    ]


async def test_the_servers_environment_does_not_reach_the_code(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-secret")
    result = await sandboxed("import os\nreturn {'out': dict(os.environ)}")
    assert "sk-secret" not in str(result.outputs)


async def test_opening_a_socket_fails_even_to_a_server_on_127_0_0_1():
    connections: list[object] = []
    server = await asyncio.start_server(lambda r, w: connections.append(w), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        body = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=5)"
        failed = await escape(body)
        assert failed.endswith("PermissionError: [Errno 1] Operation not permitted\n")
        failed = await escape("import urllib.request\nurllib.request.urlopen('http://1.1.1.1')")
        assert "Operation not permitted" in failed
    assert connections == []


@pytest.mark.parametrize(
    "body",
    [
        "import subprocess\nsubprocess.run(['/bin/sh', '-c', 'echo hi'])",
        "import os\nos.posix_spawn('/usr/bin/python3', ['x'], {})",
        "import os\nos.fork()",
        "import multiprocessing\nmultiprocessing.Process(target=print).start()",
    ],
    ids=["subprocess", "posix_spawn", "fork", "multiprocessing"],
)
async def test_spawning_a_process_fails(body):
    failed = await escape(body)
    assert "PermissionError: [Errno 1] Operation not permitted" in failed.splitlines()[-1]


async def test_a_fork_bomb_fails_at_its_first_fork():
    failed = await escape("import os\nwhile True:\n    os.fork()")
    assert failed.endswith("PermissionError: [Errno 1] Operation not permitted\n")


async def test_threads_still_work():
    body = """
    import threading
    seen = []
    workers = [threading.Thread(target=seen.append, args=(i,)) for i in range(4)]
    for w in workers: w.start()
    for w in workers: w.join()
    return {'out': sorted(seen)}
    """
    assert (await sandboxed(body)).outputs == {"out": [0, 1, 2, 3]}


async def test_allocating_4_gb_fails_at_the_memory_limit():
    failed = await escape("b = bytearray(4 * 1024 ** 3)")
    assert failed == "exceeded the 256 MiB memory limit"
    grows = "chunks = []\nwhile True:\n    chunks.append(bytearray(10 ** 6))"
    assert await escape(grows) == "exceeded the 256 MiB memory limit"


async def test_an_infinite_loop_is_stopped_at_its_cpu_limit():
    failed = await escape("while True:\n    pass", still_running=True)
    assert failed == "exceeded 2 s of CPU time"


async def test_a_job_that_waits_forever_is_stopped_at_its_wall_clock_budget():
    quick = CodeSettings(workers=2, timeout_s=1, cpu_s=2)
    failed = await escape("import time\ntime.sleep(3600)", quick, still_running=True)
    assert failed == "exceeded 1 s"


async def test_printing_100_mb_fails_at_the_output_limit():
    failed = await escape("while True:\n    print('x' * 1_000_000)")
    assert failed.endswith("OutputLimitExceeded: printed more than 100000 characters\n")
    # Bytes written past print, straight to file descriptor 1, reach /dev/null.
    result = await sandboxed("import os\nos.write(1, b'x' * 100_000_000)\nreturn {'out': 1}")
    assert result == codebox.CodeResult({"out": 1}, "")


async def test_returning_too_much_fails_at_the_reply_limit():
    failed = await escape("return {'out': 'x' * 20_000_000}")
    assert failed == f"main's outputs and stdout take more than {LIMITS.max_reply_bytes} bytes"
    # 100 MB, encoded for the reply, does not fit in the job's memory to begin with.
    assert await escape("return {'out': 'x' * 100_000_000}") == "exceeded the 256 MiB memory limit"


async def test_importing_ctypes_fails():
    failed = await escape("import ctypes")
    assert failed.endswith("ModuleNotFoundError: No module named '_ctypes'\n")


async def test_the_scratch_directory_is_writable_and_bounded():
    body = "open('f', 'w').write('hello')\nreturn {'out': open('f').read()}"
    assert (await sandboxed(body)).outputs == {"out": "hello"}
    failed = await escape("open('big', 'wb').write(b'x' * 17 * 1024 * 1024)")
    assert "File too large" in failed or "No space left on device" in failed


def test_the_sandbox_is_available_here():
    # CI installs bubblewrap (scripts/test.sh); without it the node refuses, never runs bare.
    assert codebox.available() is None
    assert os.path.exists("/usr/bin/bwrap")


def test_the_cli_runs_a_code_node_and_exits_cleanly(tmp_path):
    path = tmp_path / "flow.json"
    path.write_text(json.dumps(code_flow(CODE.default_config["code"], ["count"])))
    # A process or pipe left to the garbage collector says so on stderr (ResourceWarning).
    done = subprocess.run(
        [
            sys.executable,
            "-W",
            "always::ResourceWarning",
            "-m",
            "graphs",
            "run",
            str(path),
            "--input",
            "text=a b c",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert json.loads(done.stdout) == {"status": "succeeded", "outputs": {"value": 3}}


ENDS_WHILE_A_SPARE_STARTS = """
import asyncio
from graphs import codebox

async def main():
    settings = codebox.CodeSettings(spares=1, timeout_s=60)
    result = await codebox.run("def main():\\n    return {'x': 1}", {}, ["x"], settings)
    assert result.outputs == {"x": 1}
    # Returns at once: the spare this job started is still starting, and asyncio.run
    # cancels it, then the pool closes.

for _ in range(5):
    asyncio.run(main())
print("ok")
"""


def test_a_loop_that_ends_while_a_spare_starts_leaves_no_process_or_pipe_behind():
    # The job's process dies with its PID namespace just after bwrap exits, and only then
    # closes its stdout: the pool waits for both, so no transport outlives its loop
    # ("Event loop is closed" from its __del__ on stderr, once in a few runs before).
    assert ends_cleanly(ENDS_WHILE_A_SPARE_STARTS) == (0, "", "ok\n")
