"""The canvas without a mouse: Alice adds, moves, wires and deletes nodes with the
keyboard alone, and an aria-live region says what happened."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.e2e.conftest import log_in
from tests.e2e.test_editor import create_flow, doc, errors, new_user, open_editor

__all__ = ["errors"]


def tab_to(page: Page, testid: str, limit: int = 80, key: str = "Tab") -> None:
    """Press Tab (or `key`) until the element with this test id has focus."""
    for _ in range(limit):
        if page.evaluate("() => document.activeElement?.dataset?.testid") == testid:
            return
        page.keyboard.press(key)
    raise AssertionError(f"Tab never reached {testid}")


def said(page: Page) -> str:
    return page.get_by_test_id("canvas-announcer").inner_text()


def test_alice_builds_and_wires_a_two_node_flow_with_the_keyboard_alone(
    page: Page, server, errors: list[str]
) -> None:
    alice = new_user(server)
    flow_id = create_flow(server, alice)
    log_in(page, server, alice)
    open_editor(page, server, flow_id)
    announcer = page.get_by_test_id("canvas-announcer")

    # The output first: the palette adds the next node beside it, on its left (never on it).
    tab_to(page, "palette-output")
    page.keyboard.press("Enter")
    page.wait_for_selector('[data-cell-id="output1"]')
    tab_to(page, "palette-input", key="Shift+Tab")
    page.keyboard.press("Enter")
    page.wait_for_selector('[data-cell-id="input1"]')
    added = {n["id"]: n["position"] for n in doc(page)["nodes"]}
    assert added["input1"]["x"] < added["output1"]["x"]

    # Into the canvas: the first node (left to right, then top down) has focus.
    tab_to(page, "canvas")
    expect(announcer).to_contain_text("input1, input node")
    # Move the output 300 px to the right.
    page.keyboard.press("Tab")
    expect(announcer).to_contain_text("output1, output node")
    for _ in range(6):
        page.keyboard.press("Shift+ArrowRight")
    expect(announcer).to_contain_text("output1 moved to")
    positions = {n["id"]: n["position"] for n in doc(page)["nodes"]}
    assert positions["output1"]["x"] - added["output1"]["x"] == 300
    assert positions["output1"]["y"] == added["output1"]["y"] == positions["input1"]["y"]
    assert positions["input1"] == added["input1"]

    # Wire input1's value into output1's value.
    page.keyboard.press("Shift+Tab")
    expect(announcer).to_contain_text("input1, input node")
    page.keyboard.press("Enter")
    expect(announcer).to_contain_text("output value of input1")
    expect(page.locator('[data-cell-id="input1"] [port="out:value"].kb-port')).to_have_count(1)
    page.keyboard.press("Enter")
    expect(announcer).to_contain_text("Picked up output value of input1")
    page.keyboard.press("Tab")
    expect(announcer).to_contain_text("output1, output node. Holding output value of input1")
    page.keyboard.press("Enter")
    expect(announcer).to_contain_text("input value of output1")
    page.keyboard.press("Enter")
    expect(announcer).to_contain_text("Connected output value of input1 to input value of output1")
    edges = doc(page)["edges"]
    assert [(e["source"], e["source_port"], e["target"], e["target_port"]) for e in edges] == [
        ("input1", "value", "output1", "value")
    ]

    # It saves like a flow built with the mouse.
    page.keyboard.press("Control+s")
    expect(page.get_by_test_id("version")).to_have_text("v2")

    # Delete the output node (still the focused one) from the keyboard; undo brings it and
    # its wire back.
    page.keyboard.press("Delete")
    expect(announcer).to_contain_text("output1 deleted")
    page.wait_for_function("() => Switchyard.canvas.documentJSON().nodes.length === 1")
    page.keyboard.press("Control+z")
    page.wait_for_function("() => Switchyard.canvas.documentJSON().edges.length === 1")
    assert said(page)
