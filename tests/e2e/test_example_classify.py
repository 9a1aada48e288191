"""The routing example (examples/classify.json) as a new user meets it: opened from the
flow list, run on the fake model, the ticket goes where the model's structured category
says, and the canvas lights up that route alone."""

from __future__ import annotations

import json

from playwright.sync_api import Page, expect

from tests.e2e.conftest import Server, log_in
from tests.e2e.test_editor import READY, new_user
from tests.e2e.test_runs import TIMEOUT_MS, canvas_status, start_run, step
from tests.fakes.anthropic_server import FakeResponse

CARRIED = """(node) => Object.fromEntries(Switchyard.canvas.graph.getEdges()
    .filter((e) => e.getSourceCellId() === node)
    .map((e) => [e.getSourcePortId().slice(4),
                 String(e.attr("line/class")).includes("is-carried")]))"""


def open_example(page: Page, server: Server, name: str) -> None:
    """A new user's flow list offers the examples; the example opens in the editor."""
    username = new_user(server)
    log_in(page, server, username)
    page.goto(f"{server.url}/")
    page.get_by_role("link", name=name, exact=True).click()
    page.wait_for_function(READY)
    expect(page.get_by_test_id("flow-name")).to_have_value(name)


def test_the_classify_example_routes_a_ticket_by_its_structured_category(
    page: Page, server: Server, model_server
) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    open_example(page, server, "Triage support tickets")
    # The reason mentions billing; only the category field decides the route.
    reason = "Not billing: the app fails to start."
    before = len(model_server.message_requests)
    model_server.enqueue(
        FakeResponse(text=json.dumps({"category": "technical", "reason": reason})),
        FakeResponse(text="Reinstall the app, then sign in again."),
    )
    start_run(page, {"ticket": "I paid, and now the app will not start"})
    expect(page.get_by_test_id("run-status")).to_have_attribute(
        "data-status", "succeeded", timeout=TIMEOUT_MS
    )

    # The route taken lights up; the other specialists never ran.
    for node in ("classify", "route", "technical", "answer", "reason"):
        expect(step(page, node)).to_have_attribute("data-status", "done")
    page.wait_for_function(f"() => ({CARRIED})('route').technical === true")
    assert page.evaluate(f"({CARRIED})('route')") == {
        "billing": False,
        "technical": True,
        "general": False,
    }
    assert canvas_status(page, "technical") == "done"
    assert canvas_status(page, "billing") != "done"
    assert canvas_status(page, "general") != "done"
    outputs = page.get_by_test_id("outputs")
    expect(outputs).to_contain_text("Reinstall the app, then sign in again.")
    expect(outputs).to_contain_text(reason)

    # The model was asked for the category in the example's schema, then the specialist.
    classify, specialist = model_server.message_requests[before:]
    schema = classify["output_config"]["format"]["schema"]
    assert schema["properties"]["category"]["enum"] == ["general", "billing", "technical"]
    assert specialist["system"] == "You are a support engineer on a customer support team."
    assert errors == []
