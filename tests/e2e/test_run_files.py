"""A file run input in the browser: the run form's file field uploads an image as a part of
a multipart body (no base64 in the page), the model gets it as an image block, and the run
page shows it (a thumbnail from the file view)."""

from __future__ import annotations

import base64

from playwright.sync_api import Page, expect

from tests.e2e.conftest import log_in
from tests.e2e.test_runs import create_flow, errors  # noqa: F401  (the errors fixture)
from tests.webapp.test_run_files import PNG, PNG64

TIMEOUT_MS = 30_000


def document() -> dict:
    def at(x: int) -> dict:
        return {"x": x, "y": 120}

    return {
        "graph": {"name": "Look"},
        "nodes": [
            {"id": "pic", "type": "input", "config": {"name": "pic", "kind": "file"},
             "position": at(40)},
            {"id": "ask", "type": "llm", "config": {"prompt": "Describe {{ pic }} briefly"},
             "position": at(320)},
            {"id": "out", "type": "output", "config": {"name": "text"}, "position": at(620)},
        ],
        "edges": [
            {"source": "pic", "target": "ask", "source_port": "value", "target_port": "pic"},
            {"source": "ask", "target": "out", "source_port": "text", "target_port": "value"},
        ],
    }  # fmt: skip


def test_an_image_chosen_in_the_run_form_reaches_the_model_and_shows_on_the_run_page(
    page: Page,
    server,
    model_server,
    errors,  # noqa: F811
):
    username, _, url = create_flow(server, document())
    log_in(page, server, username)
    page.goto(url)
    page.get_by_test_id("run").click()
    picker = page.get_by_test_id("run-file-pic")
    expect(picker).to_be_visible(timeout=TIMEOUT_MS)
    picker.set_input_files({"name": "cat.png", "mimeType": "image/png", "buffer": PNG})
    with page.expect_response(
        lambda r: r.url.endswith("/runs") and r.request.method == "POST"
    ) as info:
        page.get_by_test_id("run-submit").click()
    assert info.value.status == 201, info.value.text()
    sent = info.value.request
    assert sent.headers["content-type"].startswith("multipart/form-data; boundary=")
    # (Playwright does not show a body with files; the model's request below shows the bytes.)
    run_id = info.value.json()["id"]
    expect(page.get_by_test_id("run-status")).to_have_attribute(
        "data-status", "succeeded", timeout=TIMEOUT_MS
    )
    sent = [
        r.body for r in model_server.requests
        if isinstance(r.body, dict) and "Describe" in str(r.body.get("messages"))
    ]  # fmt: skip
    assert sent[-1]["messages"][0]["content"][1]["source"]["data"] == PNG64

    page.goto(f"{server.url}/runs/{run_id}/")
    shown = page.get_by_test_id("run-file-pic")
    expect(shown).to_contain_text("cat.png")
    expect(shown).to_contain_text("image/png")
    thumb = shown.locator("img")
    expect(thumb).to_be_visible(timeout=TIMEOUT_MS)
    page.wait_for_function(
        "img => img.complete && img.naturalWidth === 1",
        arg=thumb.element_handle(),
        timeout=TIMEOUT_MS,
    )


def test_a_pdf_chosen_in_the_run_form_goes_as_a_document_and_is_listed_on_the_run_page(
    page: Page,
    server,
    model_server,
    errors,  # noqa: F811
):
    pdf = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
    username, _, url = create_flow(server, document())
    log_in(page, server, username)
    page.goto(url)
    page.get_by_test_id("run").click()
    picker = page.get_by_test_id("run-file-pic")
    expect(picker).to_be_visible(timeout=TIMEOUT_MS)
    picker.set_input_files({"name": "report.pdf", "mimeType": "application/pdf", "buffer": pdf})
    with page.expect_response(
        lambda r: r.url.endswith("/runs") and r.request.method == "POST"
    ) as info:
        page.get_by_test_id("run-submit").click()
    assert info.value.status == 201, info.value.text()
    assert info.value.request.headers["content-type"].startswith("multipart/form-data")
    run_id = info.value.json()["id"]
    expect(page.get_by_test_id("run-status")).to_have_attribute(
        "data-status", "succeeded", timeout=TIMEOUT_MS
    )
    sent = [
        r.body for r in model_server.requests
        if isinstance(r.body, dict) and "Describe" in str(r.body.get("messages"))
    ]  # fmt: skip
    block = sent[-1]["messages"][0]["content"][1]
    assert block["type"] == "document" and block["title"] == "report.pdf"
    assert block["source"]["data"] == base64.b64encode(pdf).decode()

    page.goto(f"{server.url}/runs/{run_id}/")
    shown = page.get_by_test_id("run-file-pic")
    expect(shown).to_contain_text("report.pdf")
    expect(shown).to_contain_text("application/pdf")
