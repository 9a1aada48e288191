"""Shared harness for the live-server benchmarks (event_path, load, editor_open).

``LiveStack`` starts the fake Anthropic API and a real Daphne server in subprocesses, on
a fresh SQLite file in a temporary directory (as tests/e2e/conftest.py does), creates a
user and an API token, and tears everything down on exit. ``Api`` talks to the JSON API
with the token; ``Watcher`` is one websocket client on ``/ws/runs/<id>/`` that records
the arrival time of every message and parses them only after the run, so that parsing
never delays the next receive. Nothing here is a benchmark of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
USERNAME = "bench"
PASSWORD = "correct horse battery"  # a throwaway user in a throwaway database
PING = '{"type":"ping"}'  # the consumer answers exactly this text with a pong
DAPHNE_START_S = 240


CHROMIUM = os.environ.get("SWITCHYARD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def launch_chromium(playwright: Any) -> Any:
    """Debian's Chromium, headless, quiet (browsers cannot be downloaded here)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def logged_in_context(browser: Any, url: str) -> Any:
    """A 1280x800 browser context logged in as the bench user on the server at `url`."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(f"{url}/login/")
    page.fill("input[name=username]", USERNAME)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda u: "/login" not in u, timeout=15000)
    page.close()
    return context


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveStack:
    """Fake model server + Daphne on a temporary SQLite database; a context manager.

    ``profile_to``: run Daphne under cProfile and write the stats there at shutdown
    (the event loop thread only; database work runs in asgiref's worker thread).
    """

    def __init__(
        self,
        *,
        profile_to: Path | None = None,
        env: dict[str, str] | None = None,
        server_script: Path | None = None,
        model_backlog: int = 5,
    ):
        self.profile_to = profile_to
        # A script to run instead of daphne's (it must end by running daphne's CLI):
        # for diagnostics that patch or trace the server before it starts.
        self.server_script = server_script
        # The fake model server is a stdlib ThreadingHTTPServer: listen(5) unless raised.
        self.model_backlog = model_backlog
        self.extra_env = env or {}
        self.tmp = Path(tempfile.mkdtemp(prefix="switchyard-bench-"))
        self.processes: list[subprocess.Popen] = []
        self.logs: list[Any] = []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.token = ""
        self.env: dict[str, str] = {}
        self.model_url = ""

    # --- lifecycle ------------------------------------------------------------------

    def __enter__(self) -> LiveStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        self.model_url = self._start_fake_model()
        database = self.tmp / "bench.sqlite3"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "DJANGO_"))},
            "DATABASE_URL": f"sqlite:///{database}",
            "ANTHROPIC_API_KEY": "test-key",
            "ANTHROPIC_BASE_URL": self.model_url,
            "DEBUG": "1",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "NO_PROXY": "127.0.0.1,localhost",
            "PYTHONUNBUFFERED": "1",
            # One user starts every run of a benchmark: as many at once as it asks for.
            "SWITCHYARD_MAX_RUNS_IN_FLIGHT": "0",
            **self.extra_env,
        }
        self.manage("migrate", "--noinput")
        self.manage(
            "shell",
            "-c",
            "from django.contrib.auth import get_user_model;"
            f"get_user_model().objects.create_user({USERNAME!r}, password={PASSWORD!r})",
        )
        self.token = self.manage("apitoken", USERNAME).strip()
        self._start_daphne()

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(
                    signal.SIGTERM if process is self.processes[-1] else signal.SIGINT
                )
        for process in reversed(self.processes):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()
        for log in self.logs:
            log.close()
        self.logs.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [PYTHON, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=DAPHNE_START_S,  # migrate alone has taken over 120 s at a load of 20
        )
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stderr}")
        return done.stdout

    def _start_fake_model(self) -> str:
        # Same server and CLI as ``python -m tests.fakes.anthropic_server``; only its
        # accept queue (socketserver's request_queue_size) is set first.
        code = (
            "import tests.fakes.anthropic_server as fake;"
            f"fake._Server.request_queue_size = {self.model_backlog};"
            "fake.main(['--port', '0', '--quiet'])"
        )
        process = subprocess.Popen(
            [PYTHON, "-c", code],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.processes.append(process)
        line = process.stdout.readline().strip() if process.stdout else ""
        prefix = "listening on "
        if not line.startswith(prefix):
            raise RuntimeError(f"fake model server did not start: {line!r}")
        return line[len(prefix) :]

    def _start_daphne(self) -> None:
        log_path = self.tmp / "daphne.log"
        log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.logs.append(log)
        prefix = [PYTHON]
        if self.profile_to is not None:
            prefix += ["-m", "cProfile", "-o", str(self.profile_to)]
        if self.server_script is not None:
            daphne = [str(self.server_script)]
        elif self.profile_to is not None:
            daphne = [_daphne_script()]
        else:
            daphne = ["-m", "daphne"]
        process = subprocess.Popen(
            [*prefix, *daphne, "-b", "127.0.0.1", "-p", str(self.port), "webapp.asgi:application"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        # Generous: on the shared 2-core machine, at a load of 15-20, Django's start alone
        # has taken over a minute.
        deadline = time.monotonic() + DAPHNE_START_S
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if process.poll() is not None:
                    raise RuntimeError(log_path.read_text()) from None
                time.sleep(0.1)
        raise RuntimeError(f"daphne did not start listening within {DAPHNE_START_S} s")

    @property
    def server_pid(self) -> int:
        return self.processes[-1].pid

    def daphne_log(self) -> str:
        path = self.tmp / "daphne.log"
        return path.read_text() if path.exists() else ""


def _daphne_script() -> str:
    """cProfile runs a script path, not ``-m``: daphne's console script."""
    return str(Path(PYTHON).with_name("daphne"))


# --- JSON API ------------------------------------------------------------------------


class Api:
    def __init__(self, stack: LiveStack):
        self.client = httpx.AsyncClient(
            base_url=stack.url,
            headers={"Authorization": f"Bearer {stack.token}"},
            timeout=60,
            trust_env=False,
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=200),
        )

    async def close(self) -> None:
        await self.client.aclose()

    async def create_flow(self, name: str, graph: dict[str, Any]) -> int:
        response = await self.client.post("/api/flows", json={"name": name, "graph": graph})
        if response.status_code != 201:
            raise RuntimeError(f"POST /api/flows: {response.status_code} {response.text[:2000]}")
        return response.json()["id"]

    async def start_run(self, flow_id: int, inputs: dict[str, Any] | None = None) -> int:
        response = await self.client.post(
            f"/api/flows/{flow_id}/runs", json={"inputs": inputs or {}}
        )
        if response.status_code != 201:
            raise RuntimeError(f"POST runs: {response.status_code} {response.text[:2000]}")
        return response.json()["id"]

    async def run(self, run_id: int) -> dict[str, Any]:
        response = await self.client.get(f"/api/runs/{run_id}")
        response.raise_for_status()
        return response.json()

    async def events(self, run_id: int) -> list[dict[str, Any]]:
        """Every recorded event of the run, following the pages' ``next``."""
        found: list[dict[str, Any]] = []
        url: str | None = f"/api/runs/{run_id}/events"
        while url:
            response = await self.client.get(url)
            response.raise_for_status()
            page = response.json()
            found += page["items"]
            url = page["next"]
        return found

    async def db_last_seq(self, run_id: int) -> tuple[int, bool]:
        """(last seq the database holds, whether its log is exactly 1..last)."""
        run = await self.run(run_id)
        seqs = [e["seq"] for e in await self.events(run_id)]
        last = run.get("last_seq", seqs[-1] if seqs else 0)
        return last, seqs == list(range(1, last + 1))

    async def wait_finished(self, run_id: int, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            run = await self.run(run_id)
            if run["status"] in ("succeeded", "failed", "cancelled"):
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} still {run['status']} after {timeout} s")
            await asyncio.sleep(0.05)


# --- websocket clients -----------------------------------------------------------------


async def ws_connect(stack: LiveStack, path: str) -> ClientConnection:
    return await connect(
        stack.ws_url + path,
        origin=stack.url,
        additional_headers={"Authorization": f"Bearer {stack.token}"},
        max_size=None,
        ping_interval=None,
        open_timeout=60,
    )


@dataclass
class Watcher:
    """One websocket client following one run until its ``run_finished`` arrives."""

    stack: LiveStack
    run_id: int
    after: int = 0
    connected_at: float = 0.0  # time.time() when the handshake completed
    done_at: float = 0.0
    raw: list[tuple[float, str]] = field(default_factory=list)
    error: str = ""
    _ws: ClientConnection | None = None
    _task: asyncio.Task | None = None
    _done: asyncio.Event = field(default_factory=asyncio.Event)

    async def connect(self) -> None:
        self._ws = await ws_connect(self.stack, f"/ws/runs/{self.run_id}/?after={self.after}")
        self.connected_at = time.time()
        self._task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for message in self._ws:
                now = time.time()
                self.raw.append((now, message))
                # Cheap test first; the parse only confirms it (a reply could quote it).
                if '"run_finished"' in message:
                    events = json.loads(message).get("events") or []
                    if events and events[-1]["type"] == "run_finished":
                        self.done_at = now
                        break
            else:
                self.error = "connection closed before run_finished"
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self._done.set()
            with contextlib.suppress(Exception):
                await self._ws.close()

    async def wait(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._done.wait(), timeout)
        except TimeoutError:
            self.error = self.error or f"no run_finished within {timeout:.0f} s"
            if self._task is not None:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._task

    def received(self) -> list[tuple[float, dict[str, Any]]]:
        """(arrival time, event) for every event, in arrival order."""
        out: list[tuple[float, dict[str, Any]]] = []
        for arrived, message in self.raw:
            for event in json.loads(message).get("events") or []:
                out.append((arrived, event))
        return out


def check_delivery(events: list[dict[str, Any]], last_seq: int) -> str:
    """'' when the client got seq 1..last_seq exactly once and in order, else what's wrong."""
    seqs = [e["seq"] for e in events]
    if seqs == list(range(1, last_seq + 1)):
        return ""
    seen = set(seqs)
    missing = sorted(set(range(1, last_seq + 1)) - seen)
    duplicates = len(seqs) - len(seen)
    out_of_order = sum(1 for a, b in itertools.pairwise(seqs) if b <= a)
    return (
        f"got {len(seqs)} (last {seqs[-1] if seqs else 0}), want {last_seq}: "
        f"{len(missing)} missing, {duplicates} duplicated, {out_of_order} out of order"
    )


async def ping_rtts(
    stack: LiveStack, run_id: int, *, clients: int, pings: int, interval: float
) -> list[float]:
    """Round-trip times (ms) of the consumer's ping/pong, on ``clients`` connections at once.

    The run must be finished: each connection first drains its backlog, so a pong is the
    only thing that can arrive. ``interval`` keeps each connection under the consumer's
    limit of WS_MAX_MESSAGES_PER_SECOND (20).
    """

    async def one(index: int) -> list[float]:
        ws = await ws_connect(stack, f"/ws/runs/{run_id}/?after=0")
        try:
            while True:  # the backlog ends with run_finished
                message = json.loads(await ws.recv())
                events = message.get("events") or []
                if events and events[-1]["type"] == "run_finished":
                    break
            await asyncio.sleep(interval * index / clients)  # spread the clients' pings
            rtts = []
            for _ in range(pings):
                started = time.perf_counter()
                await ws.send(PING)
                reply = await ws.recv()
                rtts.append((time.perf_counter() - started) * 1000)
                if '"pong"' not in reply:
                    raise RuntimeError(f"expected a pong, got {reply[:200]}")
                await asyncio.sleep(interval)
            return rtts
        finally:
            await ws.close()

    results = await asyncio.gather(*(one(i) for i in range(clients)))
    return [rtt for result in results for rtt in result]


class PingProbe:
    """One connection pinging every ``interval`` while something else runs: loop lag."""

    def __init__(self, stack: LiveStack, run_id: int, interval: float = 0.1):
        self.stack, self.run_id, self.interval = stack, run_id, interval
        self.rtts: list[float] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        ws = await ws_connect(self.stack, f"/ws/runs/{self.run_id}/?after=0")
        while True:
            events = json.loads(await ws.recv()).get("events") or []
            if events and events[-1]["type"] == "run_finished":
                break
        self._task = asyncio.ensure_future(self._loop(ws))

    async def _loop(self, ws: ClientConnection) -> None:
        try:
            while not self._stop.is_set():
                started = time.perf_counter()
                await ws.send(PING)
                await ws.recv()
                self.rtts.append((time.perf_counter() - started) * 1000)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.interval)
        finally:
            await ws.close()

    async def stop(self) -> list[float]:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        return self.rtts


# --- numbers and tables ------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        pairs = enumerate(zip(row, widths, strict=True))
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in pairs).rstrip()

    return "\n".join([line(cells[0]), "  ".join("-" * w for w in widths), *map(line, cells[1:])])


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return f"{value:.1f}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def machine_line() -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return (
        f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, "
        f"load avg {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )


def listen_overflows() -> int:
    """The kernel's count of connections dropped because a listen queue was full."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return -1
    for names, values in itertools.pairwise(lines):
        if names.startswith("TcpExt:") and values.startswith("TcpExt:"):
            fields = dict(zip(names.split()[1:], values.split()[1:], strict=True))
            return int(fields.get("ListenOverflows", -1))
    return -1


def profile_summary(path: Path, limit: int = 25) -> str:
    import io
    import pstats

    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    stats.sort_stats("tottime").print_stats(limit)
    return out.getvalue()


# --- flow documents --------------------------------------------------------------------


def run_benchmark(name: str, bench: Any, args: Any, profile: bool, **stack_options: Any) -> None:
    """Start the live stack, run `bench(args, stack)` in it, and report, optionally profiled."""
    print(machine_line())
    profile_to = None
    if profile:
        profile_to = Path(tempfile.gettempdir()) / f"switchyard-{name}-{os.getpid()}.prof"
    try:
        with LiveStack(profile_to=profile_to, **stack_options) as stack:
            asyncio.run(bench(args, stack))
        if profile_to is not None and profile_to.exists():
            print("\nserver profile (event loop thread, by own time):")
            print(profile_summary(profile_to))
    except Exception as exc:
        print(f"{name}: ERROR {type(exc).__name__}: {exc}")
        print("result: FAIL")
    finally:
        if profile_to is not None:
            profile_to.unlink(missing_ok=True)


def node(node_id: str, type_: str, x: float = 0, y: float = 0, **config: Any) -> dict[str, Any]:
    return {"id": node_id, "type": type_, "config": config, "position": {"x": x, "y": y}}


def edge(source: str, target: str, source_port: str, target_port: str) -> dict[str, str]:
    return {
        "source": source,
        "target": target,
        "source_port": source_port,
        "target_port": target_port,
    }


def flow_doc(name: str, nodes: list[dict], edges: list[dict]) -> dict[str, Any]:
    return {
        "directed": True,
        "multigraph": True,
        "graph": {"name": name, "description": "benchmark"},
        "nodes": nodes,
        "edges": edges,
    }


def echo_llm_doc(name: str = "warm-up") -> dict[str, Any]:
    """input -> llm (a short streamed reply) -> output: warms imports, the SDK and the DB."""
    prompt = "#fake:reply=warm up the server with a short streamed reply\n{{ q }}"
    return flow_doc(
        name,
        [
            node("q", "input", 0, 100, name="q", default="hi"),
            node("llm", "llm", 250, 100, prompt=prompt),
            node("out", "output", 500, 100, name="a"),
        ],
        [edge("q", "llm", "value", "q"), edge("llm", "out", "text", "value")],
    )
