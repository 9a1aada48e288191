"""Replay in the browser: a finished run played back from its event log, with no model call.

The run itself goes through the real stack (Daphne, the fake Anthropic API); the replay
reads /api/runs/<id>/events only, which the fake server's request log proves.
"""

from __future__ import annotations

import uuid

from django.contrib.auth import get_user_model
from django.utils import timezone
from playwright.sync_api import Page, expect

from tests.e2e.test_runs import (
    TIMEOUT_MS,
    canvas_status,
    create_flow,
    errors,  # noqa: F401 - the fixture
    log_in,
    map_document,
    start_run,
    step,
)
from webapp.flows import services
from webapp.runs.models import Run, RunEvent

NODES = ("topic", "draft", "polish", "out")
PLAYER = "document.querySelector('[data-replay-slot]').switchyardReplay"


def replay_flow(delay: float) -> dict:
    """input -> llm draft -> llm polish -> output; both llm nodes stream word by word."""
    pace = f"#fake:chunk_delay={delay}"

    def node(id_, type_, x, config, label=""):
        return {
            "id": id_,
            "type": type_,
            "config": config,
            "position": {"x": x, "y": 120},
            **({"label": label} if label else {}),
        }

    def edge(source, target, source_port, target_port):
        return {
            "source": source,
            "target": target,
            "source_port": source_port,
            "target_port": target_port,
        }

    draft = {"prompt": "Draft a note on {{ topic }}, slowly. " + pace}
    polish = {"prompt": "Polish {{ text }} " + pace, "system": "You polish notes."}
    return {
        "graph": {"name": "Replay"},
        "nodes": [
            node("topic", "input", 40, {"name": "topic", "default": "queues"}),
            node("draft", "llm", 300, draft, "Draft"),
            node("polish", "llm", 560, polish, "Polish"),
            node("out", "output", 820, {"name": "note"}),
        ],
        "edges": [
            edge("topic", "draft", "value", "topic"),
            edge("draft", "polish", "text", "text"),
            edge("polish", "out", "text", "value"),
        ],
    }


def open_flow(page: Page, server, delay: float) -> None:
    username, _, url = create_flow(server, replay_flow(delay))
    log_in(page, server, username)
    page.goto(url)
    expect(page.get_by_test_id("run")).to_be_visible()


def statuses(page: Page) -> list[str]:
    return [canvas_status(page, node) for node in NODES]


def position(page: Page) -> int:
    return int(page.get_by_test_id("replay").get_attribute("data-position") or -1)


def wait_painted(page: Page) -> None:
    """Two frames: the replay's paint and X6's render of it."""
    page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")


def test_replay_plays_steps_and_scrubs_without_calling_the_model(
    page,
    server,
    model_server,
    errors,  # noqa: F811
):
    # A word every 0.1 s: at 4x a node streams for a quarter second or so, time for the page
    # to paint it running even when frames come late on a loaded machine.
    open_flow(page, server, 0.1)
    run_id = start_run(page)
    expect(page.get_by_test_id("run-status")).to_have_attribute(
        "data-status", "succeeded", timeout=TIMEOUT_MS
    )
    calls = len(model_server.message_requests)

    page.goto(f"{server.url}/runs/{run_id}/")
    page.wait_for_selector("html[data-replay=ready]", timeout=TIMEOUT_MS)
    # The final state shows as the page opens, with the cost tags on the model nodes.
    page.wait_for_function(
        "() => document.querySelectorAll('[data-cell-id] .sy-node.st-done').length === 4"
    )
    expect(page.locator('[data-cell-id="draft"] .sy-tag-cost')).to_have_count(1)
    expect(step(page, "polish")).to_have_attribute("data-status", "done")
    expect(page.get_by_test_id("timeline-bar")).to_have_count(4, timeout=TIMEOUT_MS)
    total = page.evaluate(
        "() => document.querySelector('[data-replay-slot]').switchyardReplay.total"
    )
    assert total > 10 and position(page) == total

    scrub = page.get_by_test_id("replay-scrub")
    play = page.get_by_test_id("replay-play")
    speed = page.get_by_test_id("replay-speed")

    # Instant: from the start straight to the end.
    scrub.fill("0")
    wait_painted(page)
    assert position(page) == 0 and "done" not in statuses(page)
    expect(step(page, "draft")).not_to_have_attribute("data-status", "done")
    speed.select_option("0")
    play.click()
    assert position(page) == total
    wait_painted(page)
    assert statuses(page) == ["done"] * 4

    # 4x: plays through the recorded pace, node by node, to the end.
    scrub.fill("0")
    speed.select_option("4")
    play.click()
    expect(page.get_by_test_id("replay")).to_have_attribute("data-playing", "true")
    page.wait_for_function(
        "() => document.querySelector('[data-cell-id=\"draft\"] .sy-node.st-running')",
        timeout=TIMEOUT_MS,
    )
    expect(page.get_by_test_id("replay")).to_have_attribute(
        "data-playing", "false", timeout=TIMEOUT_MS
    )
    assert position(page) == total
    wait_painted(page)
    assert statuses(page) == ["done"] * 4

    # Step: one event at a time, by button and by the → key; the readout follows.
    scrub.fill("0")
    page.get_by_test_id("replay-step").click()
    assert position(page) == 1
    expect(page.get_by_test_id("replay-now")).to_contain_text("run_started")
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert position(page) == 3
    expect(page.get_by_test_id("replay-now")).to_contain_text("#3 / ")
    # Space plays and pauses.
    page.keyboard.press(" ")
    expect(page.get_by_test_id("replay")).to_have_attribute("data-playing", "true")
    page.keyboard.press(" ")
    expect(page.get_by_test_id("replay")).to_have_attribute("data-playing", "false")

    # Scrub to the middle of polish's stream: draft done, polish running, out not reached.
    middle = page.evaluate(
        f"""() => {{
            const deltas = {PLAYER}.events
                .map((e, i) => [e, i])
                .filter(([e]) => e.type === "node_delta" && e.node === "polish");
            return deltas[Math.floor(deltas.length / 2)][1] + 1;
        }}"""
    )
    scrub.fill(str(middle))
    wait_painted(page)
    assert statuses(page) == ["done", "done", "running", "queued"]
    expect(step(page, "polish")).to_have_attribute("data-status", "running")
    expect(step(page, "out")).not_to_have_attribute("data-status", "done")
    streamed = page.locator('[data-cell-id="polish"]').text_content() or ""
    assert "fake" in streamed and "#fake:chunk_delay" not in streamed.replace(" ", "")
    # The timeline's cursor marks the moment.
    cursor = page.locator("[data-timeline-cursor]")
    expect(cursor).to_have_attribute("visibility", "visible")

    # The inspector shows the node as of the replay's position.
    page.locator('[data-cell-id="polish"]').first.click()
    card = page.get_by_test_id("inspector")
    expect(card).to_contain_text(f"As of event {middle} of")
    expect(card.locator(".visit")).to_have_attribute("data-status", "running")
    page.locator('[data-cell-id="draft"]').first.click()
    expect(card).to_contain_text("Draft a note on queues")
    expect(card.get_by_test_id("inspector-cost")).to_be_visible()
    # A bar of the timeline opens its node too.
    page.locator('[data-testid="timeline-bar"][data-node="polish"]').click()
    expect(card).to_contain_text("You polish notes.")

    # Back to the end: the whole run again, and the inspector without a replay note.
    scrub.fill(str(total))
    wait_painted(page)
    assert statuses(page) == ["done"] * 4
    expect(cursor).to_have_attribute("visibility", "hidden")

    # None of this asked the model anything.
    assert len(model_server.message_requests) == calls


def test_replay_shows_a_maps_items_as_they_went(
    page,
    server,
    errors,  # noqa: F811
):
    username, _, url = create_flow(server, map_document())
    log_in(page, server, username)
    page.goto(url)
    run_id = start_run(page)
    expect(page.get_by_test_id("run-status")).to_have_attribute(
        "data-status", "succeeded", timeout=TIMEOUT_MS
    )
    page.goto(f"{server.url}/runs/{run_id}/")
    page.wait_for_selector("html[data-replay=ready]", timeout=TIMEOUT_MS)
    # Just after item 1 streamed its first text: the map runs, item 1 shows its stream.
    moment = page.evaluate(
        f"""() => {PLAYER}.events.findIndex(
            (e) => e.type === "node_item" && e.item === 1 && e.event === "node_delta") + 1"""
    )
    assert moment > 0
    page.get_by_test_id("replay-scrub").fill(str(moment))
    wait_painted(page)
    assert canvas_status(page, "each") == "running"
    shown = " ".join((page.locator('[data-cell-id="each"]').text_content() or "").split())
    assert "items: 2 running" in shown and "#1 call: fake" in shown, shown
    expect(page.get_by_test_id("replay-now")).to_contain_text("node_item")
    # At the end, the map's results again.
    page.get_by_test_id("replay-scrub").fill(str(page.evaluate(f"() => {PLAYER}.total")))
    wait_painted(page)
    assert canvas_status(page, "each") == "done"
    expect(page.locator('[data-cell-id="each"]')).to_contain_text("fake reply: calm bee")


def test_a_live_run_page_enables_replay_when_the_run_ends(
    page,
    server,
    model_server,
    errors,  # noqa: F811
):
    open_flow(page, server, 0.25)
    run_id = start_run(page)
    page.goto(f"{server.url}/runs/{run_id}/")
    expect(page.get_by_test_id("run-status")).to_have_attribute(
        "data-status", "running", timeout=TIMEOUT_MS
    )
    expect(page.get_by_test_id("replay-play")).to_be_disabled()
    expect(page.get_by_test_id("replay-now")).to_contain_text("when the run finishes")
    expect(page.get_by_test_id("run-status")).to_have_attribute(
        "data-status", "succeeded", timeout=TIMEOUT_MS
    )
    # Without a reload: the bar comes back ready, the timeline shows every visit.
    page.wait_for_selector("html[data-replay=ready]", timeout=TIMEOUT_MS)
    expect(page.get_by_test_id("replay-play")).to_be_enabled()
    expect(page.get_by_test_id("timeline-bar")).to_have_count(4, timeout=TIMEOUT_MS)
    calls = len(model_server.message_requests)
    page.get_by_test_id("replay-scrub").fill("0")
    page.get_by_test_id("replay-speed").select_option("0")
    page.get_by_test_id("replay-play").click()
    wait_painted(page)
    assert statuses(page) == ["done"] * 4
    assert len(model_server.message_requests) == calls


def crafted_run(server, events: list[dict], status: str = "succeeded") -> tuple[str, int]:
    """A user and a finished run of replay_flow written straight through the ORM."""
    username = server.create_user(f"crafted{uuid.uuid4().hex[:8]}")

    def craft() -> int:
        user = get_user_model().objects.get(username=username)
        flow = services.create(user, "Crafted", replay_flow(0))
        run = Run.objects.create(
            flow=flow,
            flow_version=flow.current(),
            started_by=user,
            status=status,
            started_at=timezone.now(),
            finished_at=timezone.now(),
            last_seq=len(events),
        )
        for seq, event in enumerate(events, 1):
            payload = {"seq": seq, "ts": 1700000000.0 + seq / 10, **event}
            RunEvent.objects.create(run=run, seq=seq, type=event["type"], payload=payload)
        return run.pk

    return username, server.orm(craft)


def old_events() -> list[dict]:
    """As an engine before event schemas and costs wrote them: no `schema`, no `cost_usd`."""
    events = [{"type": "run_started", "flow": "Replay", "inputs": {"topic": "queues"}}]
    for node, text in (("topic", None), ("draft", "an old draft"), ("polish", "old, polished")):
        events.append({"type": "node_started", "node": node, "iteration": 1, "inputs": {}})
        if text:
            events.append({"type": "node_delta", "node": node, "iteration": 1, "text": text})
        output = {"value": "queues"} if node == "topic" else {"text": text}
        usage = {"usage": {"input_tokens": 5, "output_tokens": 3}, "model": "m"} if text else {}
        events.append(
            {
                "type": "node_finished",
                "node": node,
                "iteration": 1,
                "output": output,
                "duration_s": 0.1,
                **usage,
            }
        )
    events.append({"type": "node_started", "node": "out", "iteration": 1, "inputs": {}})
    events.append({"type": "node_finished", "node": "out", "iteration": 1, "output": {}})
    events.append({"type": "run_finished", "status": "succeeded", "outputs": {}})
    return events


def test_a_run_recorded_by_an_older_engine_replays(page, server, errors):  # noqa: F811
    username, run_id = crafted_run(server, old_events())
    log_in(page, server, username)
    page.goto(f"{server.url}/runs/{run_id}/")
    page.wait_for_selector("html[data-replay=ready]", timeout=TIMEOUT_MS)
    page.wait_for_function(
        "() => document.querySelectorAll('[data-cell-id] .sy-node.st-done').length === 4"
    )
    expect(page.get_by_test_id("replay-problem")).to_have_count(0)
    # No cost recorded: no cost tag (rather than a wrong "$0").
    expect(page.locator(".sy-tag-cost")).to_have_count(0)
    page.get_by_test_id("replay-scrub").fill("5")
    wait_painted(page)
    assert statuses(page) == ["done", "running", "queued", "queued"]
    expect(page.locator('[data-cell-id="draft"]')).to_contain_text("an old draft")


def test_a_run_from_a_newer_engine_shows_why_and_paints_nothing(page, server, errors):  # noqa: F811
    events = old_events()
    events[0]["schema"] = 99
    username, run_id = crafted_run(server, events)
    log_in(page, server, username)
    page.goto(f"{server.url}/runs/{run_id}/")
    problem = page.get_by_test_id("replay-problem")
    expect(problem).to_contain_text("Replay is unavailable")
    expect(problem).to_contain_text("event schema 99")
    expect(page.get_by_test_id("replay-play")).to_have_count(0)
    page.wait_for_selector("html[data-canvas=ready]")
    wait_painted(page)
    # The graph is drawn; no state that could be wrong is painted on it.
    assert statuses(page) == ["idle"] * 4
    expect(step(page, "draft")).to_have_attribute("data-status", "idle")
