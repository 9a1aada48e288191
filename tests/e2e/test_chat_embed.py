"""The chat widget on a page of another origin, in Chromium: the host page (served by a
second HTTP server, on another port: another origin) carries the one script tag; on an
allowed origin the chat works and remembers the conversation, on another the frame is
refused and so are the host page's own calls. Then the editor's chat panel.

Replies come from the fake Anthropic API, whose recorded requests show what the model was
sent: the third turn's prompt holds both earlier turns.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Page, expect

from tests.e2e.conftest import log_in, pause
from tests.support.http_server import Reply, serve
from tests.support.wait import wait_for
from webapp.chat import service as chat
from webapp.flows import services
from webapp.runs.models import Run

CHAT = json.loads((Path(__file__).parents[2] / "examples" / "chat.json").read_text())
TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def host() -> Iterator:
    """Another origin's site: / is a page embedding whichever chat ?token= names."""
    pages: dict[str, bytes] = {}

    def page(seen) -> Reply:
        token = seen.path.partition("token=")[2]
        return Reply(200, pages[token], (("Content-Type", "text/html; charset=utf-8"),))

    with serve({"/": page}) as server:
        server.pages = pages  # type: ignore[attr-defined]
        yield server


def world(server, host, allowed: list[str]) -> dict:
    username = server.create_user(f"chat{uuid.uuid4().hex[:8]}")

    def build() -> dict:
        user = get_user_model().objects.get(username=username)
        flow = services.create(user, "Chat", CHAT)
        link = chat.create_link(flow, user, "Help", allowed)
        return {"flow": flow.pk, "token": link.token}

    made = server.orm(build)
    host.pages[made["token"]] = (
        "<!doctype html><html><head><title>Host</title></head><body><h1>A shop</h1>"
        f'<script src="{server.url}/c/embed.js" data-chat="{made["token"]}" async></script>'
        "</body></html>"
    ).encode()
    return {**made, "username": username}


def send(frame, text: str, replies: int) -> None:
    frame.get_by_test_id("chat-input").fill(text)
    frame.get_by_test_id("chat-send").click()
    done = frame.locator('[data-testid="chat-assistant"][data-pending="false"]')
    expect(done).to_have_count(replies, timeout=TIMEOUT_MS)


def runs_of(server, flow_id: int) -> list[dict]:
    return server.orm(
        lambda: list(Run.objects.filter(flow_id=flow_id).order_by("id").values("trigger", "inputs"))
    )


def test_the_widget_on_an_allowed_origin_chats_with_memory(page: Page, server, host, model_server):
    origin = f"http://127.0.0.1:{host.port}"
    made = world(server, host, [origin])
    page.goto(f"{origin}/?token={made['token']}")
    frame = page.frame_locator("iframe[data-switchyard-chat]")
    marker = uuid.uuid4().hex[:6]

    send(frame, f"I am Ada {marker}", 1)
    send(frame, "I like tea", 2)
    send(frame, "Who am I?", 3)

    replies = frame.locator('[data-testid="chat-assistant"]')
    expect(replies.nth(0)).to_contain_text(f"fake reply: user: I am Ada {marker}")
    prompts = [
        r["messages"][-1]["content"]
        for r in model_server.message_requests
        if marker in json.dumps(r["messages"])
    ]
    assert len(prompts) == 3
    third = prompts[-1] if isinstance(prompts[-1], str) else prompts[-1][0]["text"]
    assert f"user: I am Ada {marker}\nassistant: fake reply: user: I am Ada {marker}" in third
    assert "\nuser: I like tea\nassistant: fake reply:" in third
    assert third.endswith("user: Who am I?")

    runs = runs_of(server, made["flow"])
    assert [r["trigger"] for r in runs] == ["chat"] * 3
    assert [m["role"] for m in runs[2]["inputs"]["chat"]["history"]] == [
        "user",
        "assistant",
        "user",
        "assistant",
    ]

    # The host page's own scripts may call the chat too (CORS), being an allowed origin.
    status = page.evaluate(
        """async (url) => {
          const r = await fetch(url, {method: "POST", headers: {"Content-Type": "application/json"},
                                      body: JSON.stringify({message: "hi from the host"})});
          return r.status;
        }""",
        f"{server.url}/c/{made['token']}/messages",
    )
    assert status == 202


def test_the_widget_on_another_origin_is_refused(page: Page, server, host, csp_watch):
    made = world(server, host, [f"http://127.0.0.1:{host.port}"])
    # localhost is the same server but another origin, not in the link's list.
    page.goto(f"http://localhost:{host.port}/?token={made['token']}")
    iframe = page.locator("iframe[data-switchyard-chat]")
    expect(iframe).to_have_count(1)
    wait_for(
        lambda: any("frame-ancestors" in v for v in csp_watch.violations),
        timeout=10,
        message="Chromium to refuse the frame",
        sleep=pause(page),
    )
    framed = next(f for f in page.frames if f != page.main_frame)
    assert framed.locator("[data-testid=chat]").count() == 0

    refused = page.evaluate(
        """async (url) => {
          try {
            const r = await fetch(url, {
              method: "POST",
              headers: {"Content-Type": "application/json"},
              body: JSON.stringify({message: "hi"}),
            });
            return "answered " + r.status;
          } catch (e) { return "refused"; }
        }""",
        f"{server.url}/c/{made['token']}/messages",
    )
    assert refused == "refused"
    assert runs_of(server, made["flow"]) == []
    # The refusal was the point: it is not a violation by our pages.
    csp_watch.violations[:] = [v for v in csp_watch.violations if "frame-ancestors" not in v]


def test_the_editor_chat_panel_streams_replies_that_link_to_their_runs(page: Page, server, host):
    made = world(server, host, [])
    log_in(page, server, made["username"])
    page.goto(f"{server.url}/flows/{made['flow']}/")
    page.get_by_test_id("chat-toggle").click()
    panel = page.locator("#chat-panel")
    send(panel, "Hello panel", 1)
    send(panel, "Second", 2)
    runs = runs_of(server, made["flow"])
    assert [r["trigger"] for r in runs] == ["editor", "editor"]
    assert runs[1]["inputs"]["chat"]["history"][0] == {"role": "user", "content": "Hello panel"}
    link = panel.get_by_test_id("chat-run").nth(1)
    href = link.get_attribute("href")
    assert href and href.startswith("/runs/")
    page.goto(server.url + href)
    expect(page.get_by_test_id("run-status")).to_have_attribute("data-status", "succeeded")
