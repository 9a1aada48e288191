"""Runs in the browser: the editor's run panel, live streaming, cancel, the run page.

The real Daphne server runs flows against the fake Anthropic API; `#fake:` directives in
a prompt choose how the fake answers (see tests/fakes/anthropic_server.py).
"""

from __future__ import annotations

import json
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from playwright.sync_api import Page, expect

from tests.e2e.conftest import log_in
from tests.e2e.stub_pages import open_stub_page
from webapp.flows import services

TIMEOUT_MS = 20_000


def flow_document(prompt: str, default: str | None = "queues", retries: int = 0) -> dict:
    topic = {"name": "topic", **({"default": default} if default is not None else {})}
    return {
        "graph": {"name": "Streaming"},
        "nodes": [
            {"id": "topic", "type": "input", "config": topic, "position": {"x": 40, "y": 120}},
            {
                "id": "write",
                "type": "llm",
                "config": {"prompt": prompt, "retries": retries},
                "position": {"x": 320, "y": 120},
                "label": "Write",
            },
            {
                "id": "out",
                "type": "output",
                "config": {"name": "text"},
                "position": {"x": 620, "y": 120},
            },
        ],
        "edges": [
            {"source": "topic", "target": "write", "source_port": "value", "target_port": "topic"},
            {"source": "write", "target": "out", "source_port": "text", "target_port": "value"},
        ],
    }


def create_flow(server, document: dict) -> tuple[str, int, str]:
    """A new user owning a new flow of `document`: (username, flow id, editor URL)."""
    username = server.create_user(f"runner{uuid.uuid4().hex[:8]}")

    def create() -> int:
        user = get_user_model().objects.get(username=username)
        return services.create(user, "Streaming", document).pk

    flow_id = server.orm(create)
    return username, flow_id, server.url + reverse("flow_editor", args=[flow_id])


@pytest.fixture
def errors(page: Page) -> list[str]:
    """Every uncaught error in the page; the test fails if there is any."""
    seen: list[str] = []
    page.on("pageerror", lambda error: seen.append(str(error)))
    yield seen
    assert seen == []


def step(page: Page, node: str):
    return page.locator(f'[data-run-steps-list] li[data-node="{node}"]')


def canvas_node(page: Page, node: str):
    return page.locator(f'[data-cell-id="{node}"]').first


def canvas_status(page: Page, node: str) -> str:
    """The status the canvas draws on a node: its frame's `st-<status>` class."""
    classes = page.locator(f'[data-cell-id="{node}"] .sy-node').first.get_attribute("class") or ""
    return next((c[3:] for c in classes.split() if c.startswith("st-")), "")


def streamed_text(page: Page, node: str) -> str:
    """Everything the run view applied to a node in the current visit, from its run model."""
    return page.evaluate(
        """(node) => document.querySelector("[data-run-view]")
            .switchyardRunView.model.nodes.get(node).text""",
        node,
    )


def start_run(page: Page, values: dict[str, str] | None = None) -> int:
    page.get_by_test_id("run").click()
    submit = page.get_by_test_id("run-submit")
    expect(submit).to_be_visible()
    for name, value in (values or {}).items():
        page.locator(f'[data-input-name="{name}"]').fill(value)
    with page.expect_response(
        lambda r: r.url.endswith("/runs") and r.request.method == "POST"
    ) as info:
        submit.click()
    assert info.value.status == 201, info.value.text()
    return info.value.json()["id"]


def open_editor(
    page: Page, server, prompt: str, default: str | None = "queues", retries: int = 0
) -> int:
    username, flow_id, url = create_flow(server, flow_document(prompt, default, retries))
    log_in(page, server, username)
    page.goto(url)
    expect(page.get_by_test_id("run")).to_be_visible()
    return flow_id


def test_a_run_streams_into_the_canvas_and_fills_the_outputs(page, server, model_server, errors):
    open_editor(page, server, "Write three lines about {{ topic }}. #fake:chunk_delay=0.05")
    start_run(page, {"topic": "tiny queues"})

    # Tokens show inside the llm node while it is still running.
    page.wait_for_function(
        """() => {
            const item = document.querySelector('[data-run-steps-list] li[data-node="write"]');
            const node = document.querySelector('[data-cell-id="write"]');
            return item && item.dataset.status === "running"
                && node && node.textContent.replace(/\\s+/g, " ").includes("fake reply");
        }""",
        timeout=TIMEOUT_MS,
    )
    for node in ("topic", "write", "out"):
        expect(step(page, node)).to_have_attribute("data-status", "done", timeout=TIMEOUT_MS)
    expect(page.get_by_test_id("run-status")).to_have_attribute("data-status", "succeeded")
    assert [canvas_status(page, node) for node in ("topic", "write", "out")] == ["done"] * 3
    outputs = page.get_by_test_id("outputs")
    expect(outputs).to_contain_text("fake reply: Write three lines about tiny queues.")
    expect(outputs).to_contain_text("output tokens")
    expect(canvas_node(page, "write")).to_contain_text(
        "fake reply: Write three lines about tiny queues."
    )
    expect(page.get_by_test_id("cancel")).to_be_hidden()
    assert any("tiny queues" in json.dumps(body) for body in model_server.message_requests)


def test_cancel_stops_a_slow_run(page, server, errors):
    open_editor(page, server, "Take your time with {{ topic }}. #fake:hang")
    start_run(page)
    expect(step(page, "write")).to_have_attribute("data-status", "running", timeout=TIMEOUT_MS)
    # Reopening the editor while the run goes on picks it up again.
    page.reload()
    expect(step(page, "write")).to_have_attribute("data-status", "running", timeout=TIMEOUT_MS)
    expect(page.get_by_test_id("run-status")).to_have_attribute("data-status", "running")
    cancel = page.get_by_test_id("cancel")
    expect(cancel).to_be_visible()
    cancel.click()
    status = page.get_by_test_id("run-status")
    expect(status).to_have_attribute("data-status", "cancelled", timeout=5_000)
    expect(status).to_contain_text("Cancelled")
    expect(step(page, "write")).to_have_attribute("data-status", "cancelled")
    expect(cancel).to_be_hidden()
    page.wait_for_function(
        """() => document.querySelector('[data-cell-id="write"] .sy-node.st-cancelled')"""
    )
    assert canvas_status(page, "write") == "cancelled"


def test_the_run_page_shows_the_final_state_after_a_reload(page, server, errors):
    open_editor(page, server, "Summarise {{ topic }}.")
    run_id = start_run(page)
    expect(page.get_by_test_id("run-status")).to_have_attribute(
        "data-status", "succeeded", timeout=TIMEOUT_MS
    )
    page.goto(f"{server.url}/runs/{run_id}/")
    page.reload()
    for node in ("topic", "write", "out"):
        expect(step(page, node)).to_have_attribute("data-status", "done", timeout=TIMEOUT_MS)
    expect(page.get_by_test_id("run-status")).to_have_attribute("data-status", "succeeded")
    page.wait_for_function(
        """() => document.querySelectorAll('[data-cell-id] .sy-node.st-done').length === 3"""
    )
    expect(page.get_by_test_id("outputs")).to_contain_text("fake reply: Summarise queues.")
    expect(canvas_node(page, "write")).to_contain_text("fake reply: Summarise queues.")
    # The node card comes from the recorded events.
    step(page, "write").get_by_role("button").click()
    expect(page.locator("[data-node-card]")).to_contain_text("Summarise queues.")


def test_a_second_tab_opened_mid_run_sees_the_whole_run(page, server, errors):
    open_editor(page, server, "Go slowly through {{ topic }}, word by word. #fake:chunk_delay=0.5")
    run_id = start_run(page)
    page.wait_for_function(
        """() => {
            const node = document.querySelector('[data-cell-id="write"]');
            return node && node.textContent.replace(/\\s+/g, " ").includes("fake reply");
        }""",
        timeout=TIMEOUT_MS,
    )
    second = page.context.new_page()
    second_errors: list[str] = []
    second.on("pageerror", lambda error: second_errors.append(str(error)))
    second.goto(f"{server.url}/runs/{run_id}/")
    # Still running when the second tab joined: it follows live from here.
    expect(second.get_by_test_id("run-status")).to_have_attribute(
        "data-status", "running", timeout=TIMEOUT_MS
    )
    expected = "fake reply: Go slowly through queues, word by word."
    for tab in (page, second):
        expect(tab.get_by_test_id("run-status")).to_have_attribute(
            "data-status", "succeeded", timeout=TIMEOUT_MS
        )
        expect(tab.get_by_test_id("outputs")).to_contain_text(expected)
    # Every token exactly once in both tabs: backlog and live joined without a gap or a repeat.
    full = expected + " #fake:chunk_delay=0.5"
    assert [streamed_text(tab, "write") for tab in (page, second)] == [full, full]
    expect(second.locator('[data-cell-id="write"]')).to_contain_text(full)
    assert second_errors == []


def test_a_dropped_socket_reconnects_without_losing_or_repeating_events(page, server, errors):
    prompt = "Count the words about {{ topic }}, one at a time, slowly. #fake:chunk_delay=0.15"
    open_editor(page, server, prompt)
    start_run(page)
    page.wait_for_function(
        """() => {
            const node = document.querySelector('[data-cell-id="write"]');
            return node && node.textContent.replace(/\\s+/g, " ").includes("fake reply");
        }""",
        timeout=TIMEOUT_MS,
    )
    # Drop the connection twice while tokens stream; each time it picks up after its last seq.
    view = 'document.querySelector("[data-run-view]").switchyardRunView'
    for _ in range(2):
        page.wait_for_function(
            f"""() => {{
                const view = {view};
                const ws = view.follower && view.follower.ws;
                return view.model.finished || (ws && ws.readyState === 1);
            }}""",
            timeout=TIMEOUT_MS,
        )
        page.evaluate(f"() => {{ const ws = {view}.follower.ws; if (ws) ws.close(); }}")
    expect(page.get_by_test_id("run-status")).to_have_attribute(
        "data-status", "succeeded", timeout=TIMEOUT_MS
    )
    expected = "fake reply: " + prompt.replace("{{ topic }}", "queues")
    expect(page.get_by_test_id("outputs")).to_contain_text(expected)
    assert streamed_text(page, "write") == expected
    expect(canvas_node(page, "write")).to_contain_text(expected)


def test_a_failed_node_fails_the_run_and_shows_the_error(page, server, errors):
    open_editor(page, server, "Refuse {{ topic }}. #fake:status=400")
    start_run(page)
    status = page.get_by_test_id("run-status")
    expect(status).to_have_attribute("data-status", "failed", timeout=TIMEOUT_MS)
    expect(step(page, "write")).to_have_attribute("data-status", "failed")
    expect(step(page, "out")).not_to_have_attribute("data-status", "done")
    outputs = page.get_by_test_id("outputs")
    expect(outputs.locator(".run-error")).to_contain_text("write")
    assert canvas_status(page, "write") == "failed"


def test_a_retry_starts_the_node_text_afresh(page, server, errors):
    prompt = "Try {{ topic }} twice. #fake:break_after=3 #fake:times=1 #fake:chunk_delay=0.05"
    open_editor(page, server, prompt, retries=1)
    start_run(page)
    expect(page.get_by_test_id("run-status")).to_have_attribute(
        "data-status", "succeeded", timeout=TIMEOUT_MS
    )
    expected = "fake reply: " + prompt.replace("{{ topic }}", "queues")
    # The three words of the broken attempt were dropped when the retry began.
    assert streamed_text(page, "write") == expected
    expect(page.get_by_test_id("outputs")).to_contain_text(expected)
    step(page, "write").get_by_role("button").click()
    expect(page.locator("[data-node-card]")).to_contain_text("attempt 1 failed")


def test_unsaved_changes_are_saved_before_the_run(page, server, errors):
    open_editor(page, server, "Name {{ topic }}.")
    page.get_by_test_id("flow-name").fill("Renamed before running")
    page.get_by_test_id("run").click()
    # The form is the saved version's: the edit was saved first.
    expect(page.locator("[data-run-form]")).to_contain_text("version 2")
    with page.expect_response(lambda r: r.url.endswith("/runs")) as info:
        page.get_by_test_id("run-submit").click()
    run_id = info.value.json()["id"]
    expect(page.get_by_test_id("run-status")).to_have_attribute(
        "data-status", "succeeded", timeout=TIMEOUT_MS
    )
    page.goto(f"{server.url}/runs/{run_id}/")
    expect(page.locator(".run-head")).to_contain_text("version 2")


def test_missing_inputs_are_shown_on_the_form_and_the_node(page, server, errors):
    open_editor(page, server, "About {{ topic }}.", default=None)
    page.get_by_test_id("run").click()
    with page.expect_response(lambda r: r.url.endswith("/runs")) as info:
        page.get_by_test_id("run-submit").click()
    assert info.value.status == 400
    problems = page.locator("[data-run-problems]")
    expect(problems).to_be_visible()
    expect(problems).to_contain_text("required")
    expect(page.locator('[data-input-name="topic"]')).to_have_attribute("aria-invalid", "true")
    # The canvas marks the input node the problem is about.
    expect(page.locator('[data-cell-id="topic"] .sy-node.has-problem')).to_have_count(1)
    expect(page.get_by_test_id("run-status")).to_have_attribute("data-status", "idle")


def test_the_run_form_is_keyboard_friendly(page, server, errors):
    open_editor(page, server, "Short note on {{ topic }}.")
    page.get_by_test_id("run").focus()
    page.keyboard.press("Enter")
    field = page.locator('[data-input-name="topic"]')
    expect(field).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("run-submit")).to_have_count(0)
    expect(page.get_by_test_id("run")).to_be_focused()
    page.keyboard.press("Enter")
    expect(field).to_be_focused()
    field.fill('"quoted"')
    page.keyboard.press("Control+Enter")
    expect(page.get_by_test_id("run-status")).to_have_attribute(
        "data-status", "succeeded", timeout=TIMEOUT_MS
    )
    expect(page.get_by_test_id("outputs")).to_contain_text("Short note on quoted.")


# ---- The run view on its own: a stub canvas, no server ---------------------------------


STUB_PAGE = """<!doctype html><html><body>
<div data-run-view data-server-now="0">
  <span data-run-status data-status="idle"><span data-run-status-text></span></span>
  <span data-run-elapsed></span><span data-run-usage></span>
  <div data-run-steps><ol data-run-steps-list>
    <li data-node="a" data-status="idle"><span data-step-meta></span></li>
    <li data-node="b" data-status="idle"><span data-step-meta></span></li>
  </ol></div>
</div>
<script>
  window.calls = [];
  const record = (name) => (...args) => { window.calls.push([name, ...args]); };
  window.Switchyard = { canvas: {
    documentJSON: () => ({ nodes: [{ id: "a" }, { id: "b" }] }),
    resetRunState: record("resetRunState"), setStatus: record("setStatus"),
    appendText: record("appendText"), setText: record("setText"),
    setProgress: record("setProgress"), setIteration: record("setIteration"),
    markEdges: record("markEdges"),
  } };
</script>
</body></html>"""


def test_ten_thousand_events_paint_in_a_few_frames_without_freezing(page, errors):
    open_stub_page(page, STUB_PAGE, "runs/view.js")
    result = page.evaluate(
        """async () => {
            const { RunModel } = Switchyard.live;
            const view = document.querySelector("[data-run-view]").switchyardRunView;
            view.model = new RunModel(() => ["a", "b"]);
            let seq = 0;
            const ev = (e) => ({ seq: ++seq, ts: 1000 + seq / 1000, ...e });
            const events = [
                ev({ type: "run_started" }),
                ev({ type: "node_started", node: "a", iteration: 1 }),
            ];
            for (let i = 0; i < 10000; i++) {
                events.push(ev({ type: "node_delta", node: "a", iteration: 1, text: "x" }));
            }
            events.push(ev({
                type: "node_finished", node: "a", iteration: 1, output: { text: "x" },
                duration_s: 1.5, usage: { input_tokens: 5, output_tokens: 10000 },
            }));
            events.push(ev({ type: "node_started", node: "b", iteration: 2 }));
            events.push(ev({
                type: "node_failed", node: "b", iteration: 2, error: "stop", cancelled: true,
            }));
            // A repeat of an old event changes nothing.
            events.push({ ...events[5] });
            // Time each frame's work: applying a share of the queue and painting it.
            let longest = 0, frames = 0;
            const drain = view.drain;
            view.drain = function () {
                const start = performance.now();
                drain.call(this);
                longest = Math.max(longest, performance.now() - start);
                frames++;
            };
            view.enqueue(events);
            await new Promise((resolve) => {
                const check = () => (view.queue.length ? requestAnimationFrame(check) : resolve());
                requestAnimationFrame(check);
            });
            await new Promise((r) => requestAnimationFrame(r));
            const text = calls
                .filter((c) => (c[0] === "appendText" || c[0] === "setText") && c[1] === "a")
                .map((c) => (c[0] === "setText" ? "|" : "") + c[2])
                .join("");
            return {
                longest, frames, text, calls: calls.length,
                statusA: document.querySelector('li[data-node="a"]').dataset.status,
                metaA: document.querySelector('li[data-node="a"] [data-step-meta]').textContent,
                statusB: document.querySelector('li[data-node="b"]').dataset.status,
                iterations: calls.filter((c) => c[0] === "setIteration"),
                marks: calls.filter((c) => c[0] === "markEdges"),
                usage: document.querySelector("[data-run-usage]").textContent,
            };
        }"""
    )
    assert result["text"].replace("|", "") == "x" * 10000
    assert result["calls"] < 50, result["calls"]
    # No frame blocks the page for long, however many events are waiting.
    assert result["frames"] >= 1 and result["longest"] < 50, result
    assert result["statusA"] == "done" and result["metaA"] == "1.5 s"
    assert result["statusB"] == "cancelled"
    assert result["iterations"] == [["setIteration", "b", 2]]
    assert result["marks"] == [["markEdges", "a", "text"]]
    assert result["usage"] == "5 in · 10,000 out tokens"


def test_form_values_are_json_or_text(page, errors):
    open_stub_page(page, "<!doctype html><body></body>", "runs/view.js")
    values = page.evaluate(
        """() => ["42", "hello", "", "  ", '"42"', '{"a": [1]}', "null", '"[1,"']
            .map((v) => Switchyard.live.parseValue(v))"""
    )
    assert values == [42, "hello", None, None, "42", {"a": [1]}, None, "[1,"]
    # Broken JSON ({ or [ that does not parse) is refused, not sent as text by surprise.
    refusals = page.evaluate(
        """() => ["[1,", '{"a": 1', " {a: 1}"].map((v) => {
            try { Switchyard.live.parseValue(v); return null; } catch (e) { return e.message; }
        })"""
    )
    assert all(r and "looks like JSON but is not valid JSON" in r for r in refusals), refusals


def map_document(chunk_delay: float = 0.3) -> dict:
    """A map over two words whose items stream slowly (`chunk_delay` seconds between their
    words), each also given a shared `tone`."""
    pace = f"#fake:chunk_delay={chunk_delay}"

    def at(x: int) -> dict:
        return {"x": x, "y": 120}

    inner = {
        "graph": {"name": "one item"},
        "nodes": [
            {"id": "item", "type": "input", "config": {"name": "item"}, "position": at(0)},
            {"id": "tone", "type": "input", "config": {"name": "tone"}, "position": at(0)},
            {
                "id": "call",
                "type": "llm",
                "config": {"prompt": "{{ tone }} {{ item }} " + pace},
                "position": at(250),
            },
            {"id": "r", "type": "output", "config": {"name": "r"}, "position": at(500)},
        ],
        "edges": [
            {"source": "item", "target": "call", "source_port": "value", "target_port": "item"},
            {"source": "tone", "target": "call", "source_port": "value", "target_port": "tone"},
            {"source": "call", "target": "r", "source_port": "text", "target_port": "value"},
        ],
    }
    words = {"name": "words", "default": ["ant", "bee"]}
    return {
        "graph": {"name": "Map"},
        "nodes": [
            {"id": "words", "type": "input", "config": words, "position": at(40)},
            {"id": "tone", "type": "input", "config": {"name": "tone", "default": "calm"},
             "position": {"x": 40, "y": 260}},
            {"id": "each", "type": "map", "config": {"flow": inner, "concurrency": 2},
             "position": at(320)},
            {"id": "out", "type": "output", "config": {"name": "results"}, "position": at(620)},
        ],
        "edges": [
            {"source": "words", "target": "each", "source_port": "value", "target_port": "items"},
            {"source": "tone", "target": "each", "source_port": "value", "target_port": "tone"},
            {"source": "each", "target": "out", "source_port": "results", "target_port": "value"},
        ],
    }  # fmt: skip


def test_a_maps_items_stream_into_its_node_on_the_canvas(page, server, errors):
    username, _, url = create_flow(server, map_document())
    log_in(page, server, username)
    page.goto(url)
    expect(page.get_by_test_id("run")).to_be_visible()
    start_run(page)
    # While the map runs, its node shows each item's inner node and the text it streams.
    page.wait_for_function(
        """() => {
            const node = document.querySelector('[data-cell-id="each"]');
            const text = node ? node.textContent.replace(/\\s+/g, " ") : "";
            return text.includes("items: 2 running") && text.includes("#0 call: fake reply")
                && text.includes("#1 call: fake reply");
        }""",
        timeout=TIMEOUT_MS,
    )
    expect(step(page, "each")).to_have_attribute("data-status", "done", timeout=TIMEOUT_MS)
    outputs = page.get_by_test_id("outputs")
    expect(outputs).to_contain_text("fake reply: calm ant")
    expect(outputs).to_contain_text("fake reply: calm bee")
