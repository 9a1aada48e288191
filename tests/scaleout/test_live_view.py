"""The live run view when the web process or the channel layer lets it down: the page
reconnects after the last event it has, and shows every event once, in order.

A real Chromium watches runs that real ``celery worker`` processes execute against the
fake model server, served by a Daphne that the test restarts mid-run, or cuts off from
Redis (through a relay the test controls: the Redis server is shared, and stays up).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model
from playwright.sync_api import Page, expect, sync_playwright
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.e2e.conftest import CHROMIUM, log_in
from tests.e2e.stub_pages import open_stub_page
from tests.scaleout.conftest import finished, sound_log
from tests.services import HOST, PASSWORD, DaphneServer, free_port
from tests.support.wait import wait_for
from webapp.accounts.models import ApiToken
from webapp.flows import services as flow_services
from webapp.runs.eventlog import batch_message, run_group, write_batch
from webapp.runs.models import Run

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT_MS = 60_000
WORDS = " ".join(f"w{i}" for i in range(1, 21))  # a reply streamed as 20 deltas


def _node(node_id: str, type_: str, **config) -> dict:
    return {"id": node_id, "type": type_, "config": config, "position": {"x": 0, "y": 0}}


def _edge(source: str, target: str, source_port: str, target_port: str) -> dict:
    return {
        "source": source,
        "target": target,
        "source_port": source_port,
        "target_port": target_port,
    }


def streaming_fan_out(chunk_delay: float = 0.15) -> dict:
    """topic -> two model calls streaming at once (two workers) -> merge -> a third -> out.

    Each call streams WORDS a word at a time, so events of both branches are recorded by
    different workers while the page watches.
    """
    directive = f"#fake:chunk_delay={chunk_delay}\n#fake:reply={WORDS}"
    nodes = [
        _node("topic", "input", name="topic", default="live"),
        _node("a", "llm", prompt=f"branch a on {{{{ topic }}}} {directive}"),
        _node("b", "llm", prompt=f"branch b on {{{{ topic }}}} {directive}"),
        _node("join", "merge"),
        _node("c", "llm", prompt=f"final {directive}\n{{{{ parts.a }}}} {{{{ parts.b }}}}"),
        _node("out", "output", name="answer"),
    ]
    edges = [
        _edge("topic", "a", "value", "topic"),
        _edge("topic", "b", "value", "topic"),
        _edge("a", "join", "text", "a"),
        _edge("b", "join", "text", "b"),
        _edge("join", "c", "value", "parts"),
        _edge("c", "out", "text", "value"),
    ]
    return {"directed": True, "multigraph": True, "graph": {"name": "Live"}, "nodes": nodes,
            "edges": edges}  # fmt: skip


@pytest.fixture
def browser_page(monkeypatch: pytest.MonkeyPatch) -> Iterator[Page]:
    """Debian's Chromium, torn down before the servers and the database (set up after them).

    While Playwright's sync API is active its event loop counts as running on this thread,
    so Django would refuse the test's own ORM calls as if they were made from async code.
    """
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"],
        )  # fmt: skip
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        yield page
        context.close()
        browser.close()
    assert errors == []


def follower_state(page: Page) -> dict:
    """What the page's websocket follower passed on to the view, and how many sockets."""
    return page.evaluate(
        """() => {
            const view = document.querySelector("[data-run-view]").switchyardRunView;
            const f = view.follower;
            return { seqs: f ? f.seqs.slice() : [], opened: f ? f.opened : 0,
                     status: view.model ? view.model.status : null };
        }"""
    )


def streamed_text(page: Page, node: str) -> str:
    return page.evaluate(
        """(node) => document.querySelector("[data-run-view]")
            .switchyardRunView.model.nodes.get(node).text""",
        node,
    )


def test_a_web_process_restarted_mid_run_leaves_the_page_with_every_event_once_in_order(
    cluster, celery_server, browser_page
):
    cluster.workers(2)
    alice = get_user_model().objects.create_user("alice", password=PASSWORD)
    page = browser_page
    log_in(page, celery_server, "alice")
    run = cluster.start(streaming_fan_out(), owner=alice)
    page.goto(f"{celery_server.url}/runs/{run.pk}/")

    # Both branches are streaming when the web process goes away.
    page.wait_for_function(
        """() => {
            const view = document.querySelector("[data-run-view]").switchyardRunView;
            const nodes = view.model && view.model.nodes;
            return nodes && ["a", "b"].every((id) => nodes.has(id) && nodes.get(id).text);
        }""",
        timeout=TIMEOUT_MS,
    )
    before = follower_state(page)
    run.refresh_from_db()
    assert not run.finished and before["status"] == "running"
    celery_server.restart()

    status = page.get_by_test_id("run-status")
    expect(status).to_have_attribute("data-status", "succeeded", timeout=TIMEOUT_MS)
    expect(status).to_contain_text("Succeeded")
    events = sound_log(finished(run))
    after = follower_state(page)
    # Every recorded event reached the page once, in order, across the two sockets.
    assert after["seqs"] == [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert after["opened"] >= 2
    assert len(after["seqs"]) > len(before["seqs"])
    assert run.status == "succeeded"
    # Applied once each: a repeated delta would show as a repeated word.
    for node in ("a", "b", "c"):
        assert streamed_text(page, node) == WORDS
    expect(page.get_by_test_id("outputs")).to_contain_text(WORDS, timeout=TIMEOUT_MS)


class RedisRelay:
    """A TCP relay to the session's Redis that the test can cut: Redis is down for the
    processes that reach it through here, while the shared server stays up for the rest."""

    def __init__(self, redis_url: str):
        parts = urlsplit(redis_url)
        self.target = (parts.hostname, parts.port)
        self.port = free_port()
        self.url = f"redis://{HOST}:{self.port}{parts.path}"
        self.lock = threading.Lock()
        self.open: set[socket.socket] = set()
        self.listening = False
        self.up()

    def up(self) -> None:
        listener = socket.create_server((HOST, self.port))
        listener.settimeout(0.1)
        self.listening = True
        threading.Thread(target=self.accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        """Refuse new connections, and end the open ones (their clients read EOF)."""
        self.listening = False
        with self.lock:
            sockets, self.open = self.open, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        time.sleep(0.2)  # the listener is closed by then

    def accept(self, listener: socket.socket) -> None:
        with listener:
            while self.listening:
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                upstream = socket.create_connection(self.target)
                with self.lock:
                    self.open |= {client, upstream}
                for source, sink in ((client, upstream), (upstream, client)):
                    threading.Thread(target=self.pipe, args=(source, sink), daemon=True).start()

    def pipe(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def relay(redis_url: str) -> Iterator[RedisRelay]:
    relay = RedisRelay(redis_url)
    yield relay
    relay.down()


@pytest.fixture
def relayed_server(
    transactional_db, service_env: dict[str, str], relay: RedisRelay, tmp_path: Path
) -> Iterator[DaphneServer]:
    """Daphne whose channel layer reaches Redis through the relay only."""
    server = DaphneServer({**service_env, "REDIS_URL": relay.url}, tmp_path / "web.log")
    server.start()
    yield server
    server.stop()


def test_a_socket_is_served_from_the_database_while_its_web_process_cannot_reach_redis(
    relay, relayed_server
):
    alice = get_user_model().objects.create_user("alice", password=PASSWORD)
    _, token = ApiToken.issue(alice, "tests")
    flow = flow_services.create(alice, "Live", streaming_fan_out())
    run = Run.objects.create(flow=flow, flow_version=flow.current(), started_by=alice)
    write_batch(run.pk, [event(1), event(2)])

    def watch(after: int = 0):
        return connect(
            f"{relayed_server.ws_url}/ws/runs/{run.pk}/?after={after}",
            additional_headers={"Authorization": f"Bearer {token}"},
            origin=relayed_server.url,
            open_timeout=10,
        )

    def seqs(message: str | bytes) -> list[int]:
        return [e["seq"] for e in json.loads(message)["events"]]

    with watch() as live:
        assert seqs(live.recv(timeout=10)) == [1, 2]
        # Redis goes away under the open socket: told to come back, not dropped with 1011.
        relay.down()
        with pytest.raises(ConnectionClosed):
            live.recv(timeout=10)
        assert live.close_code == 4503
    write_batch(run.pk, [event(3), event(4)])
    # Still away: the socket gets what the database holds after its last seq, and 4503.
    with watch(after=2) as degraded:
        assert seqs(degraded.recv(timeout=10)) == [3, 4]
        with pytest.raises(ConnectionClosed):
            degraded.recv(timeout=10)
        assert degraded.close_code == 4503
    relay.up()

    # Back, as live.js comes back: until a socket is in the run's group again (a connection
    # the layer's pool kept from before the outage fails once, on its next use).
    def broadcast_arrives() -> bool:
        with watch(after=4) as live:
            # Not in the database: only Redis can bring it.
            async_to_sync(get_channel_layer().group_send)(
                run_group(run.pk), batch_message([event(5)])
            )
            try:
                assert seqs(live.recv(timeout=10)) == [5]
                return True
            except ConnectionClosed:
                assert live.close_code == 4503
                return False

    wait_for(broadcast_arrives, timeout=60, interval=0.5, message="a broadcast once Redis is back")
    assert "Exception inside application" not in relayed_server.process.log()


def event(seq: int) -> dict:
    return {"seq": seq, "ts": 1_700_000_000.0 + seq, "type": "node_delta", "node": "a",
            "iteration": 1, "text": f"t{seq} "}  # fmt: skip


def test_a_web_process_cut_off_from_redis_mid_run_serves_the_page_from_the_database(
    cluster, relay, relayed_server, browser_page
):
    cluster.workers(2)
    alice = get_user_model().objects.create_user("alice", password=PASSWORD)
    page = browser_page
    log_in(page, relayed_server, "alice")
    run = cluster.start(streaming_fan_out(chunk_delay=0.25), owner=alice)
    page.goto(f"{relayed_server.url}/runs/{run.pk}/")
    page.wait_for_function(
        """() => {
            const view = document.querySelector("[data-run-view]").switchyardRunView;
            return view.follower && view.follower.seqs.length >= 3;
        }""",
        timeout=TIMEOUT_MS,
    )
    relay.down()
    # The workers go on recording; nothing reaches this web process through Redis, yet
    # the page moves on: its socket comes back for the events in the database.
    cut_at = len(follower_state(page)["seqs"])
    page.wait_for_function(
        """(seen) => document.querySelector("[data-run-view]").switchyardRunView
            .follower.seqs.length >= seen + 5""",
        arg=cut_at,
        timeout=TIMEOUT_MS,
    )
    run.refresh_from_db()
    assert not run.finished, "the run ended before Redis came back: make it longer"
    relay.up()

    status = page.get_by_test_id("run-status")
    expect(status).to_have_attribute("data-status", "succeeded", timeout=TIMEOUT_MS)
    events = sound_log(finished(run))
    after = follower_state(page)
    assert after["seqs"] == [e["seq"] for e in events] == list(range(1, len(events) + 1))
    for node in ("a", "b", "c"):
        assert streamed_text(page, node) == WORDS
    assert "Exception inside application" not in relayed_server.process.log()


# The follower on its own, with a scripted socket: what it asks for and what it passes on.

STUB_PAGE = """<!doctype html><html><body>
<script>
  window.sockets = [];
  class ScriptedSocket {
    constructor(url) { this.url = url; this.sent = []; this.readyState = 0; sockets.push(this); }
    send(text) { this.sent.push(text); }
    close(code) { this.finish(code || 1000); }
    open() { this.readyState = 1; this.onopen && this.onopen({}); }
    deliver(events) { this.onmessage({ data: JSON.stringify({ events }) }); }
    finish(code) {
      if (this.readyState === 3) return;
      this.readyState = 3;
      this.onclose && this.onclose({ code });
    }
  }
  ScriptedSocket.OPEN = 1;
  window.WebSocket = ScriptedSocket;
</script>
</body></html>"""


def test_the_follower_resumes_after_its_last_seq_pings_when_quiet_and_drops_repeats(
    browser_page,
):
    page = browser_page
    page.clock.install()
    open_stub_page(page, STUB_PAGE, "runs/view.js")
    page.evaluate(
        """() => {
            window.passed = [];
            window.follower = new Switchyard.live.Follower(7, {
                onEvents: (events) => passed.push(...events.map((e) => e.seq)),
            });
            const ws = sockets[0];
            ws.open();
            ws.deliver([{ seq: 1, type: "run_started" }, { seq: 2, type: "node_started" }]);
            // The server could not reach its channel layer: backlog sent, then 4503.
            ws.finish(4503);
        }"""
    )
    page.clock.run_for(500)  # a dropped socket would be back by now; this one waits longer
    assert page.evaluate("sockets.length") == 1
    page.clock.run_for(1000)
    assert page.evaluate("sockets.map((s) => s.url.split('/ws/')[1])") == [
        "runs/7/?after=0",
        "runs/7/?after=2",
    ]
    page.evaluate(
        """() => {
            const ws = sockets[1];
            ws.open();
            ws.deliver([{ seq: 2, type: "node_started" }, { seq: 3, type: "node_delta" }]);
        }"""
    )
    # Quiet for a few seconds: it asks the server for what the channel layer may have lost.
    page.clock.run_for(2000)
    assert page.evaluate("sockets[1].sent") == []
    page.clock.run_for(2000)
    assert page.evaluate("sockets[1].sent") == ['{"type":"ping"}']
    page.evaluate("sockets[1].deliver([{ seq: 4, type: 'run_finished', status: 'succeeded' }])")
    assert page.evaluate("passed") == [1, 2, 3, 4]
    assert page.evaluate("follower.seqs") == [1, 2, 3, 4]
    # Finished: no more pings, no reconnect.
    page.clock.run_for(10_000)
    assert page.evaluate("sockets.length") == 2
    assert page.evaluate("sockets[1].sent") == ['{"type":"ping"}']
