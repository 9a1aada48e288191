"""A scripted tour of the editor: screenshots, and the time a scripted user takes to build a
flow from an empty canvas.

    .venv/bin/python scripts/editor_tour.py /tmp/shots/after

Starts the app itself (Daphne on a free port, a SQLite file in a temporary folder, the fake
Anthropic API of tests/fakes on loopback), drives Debian's Chromium with Playwright, and
saves into the folder:

- editor-1440x900.png, editor-1280x800.png: the router example with a node selected and the
  run form open;
- run-1440x900.png: the run page of a finished run of that example;
- build-1440x900.png: the flow the scripted user built.

It prints the build time: from the empty editor being ready to the flow
input -> llm -> router (condition) -> two llm branches -> output being saved, with real mouse
drags from the palette, real wiring drags between ports and typing into the node forms.
Node ids are read from the document as nodes appear, so the tour works whatever ids the
editor gives new nodes.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402
from playwright.sync_api import TimeoutError as PlaywrightTimeout  # noqa: E402

from tests.fakes.anthropic_server import FakeAnthropic  # noqa: E402
from tests.support.canvas import centre, drag  # noqa: E402
from tests.support.canvas import connect as wire  # noqa: E402

CHROMIUM = os.environ.get("SWITCHYARD_CHROMIUM", "/usr/bin/chromium")
USERNAME = "tourist"
PASSWORD = "correct horse battery"  # noqa: S105 (a throwaway user on a temporary database)
READY = "() => document.documentElement.dataset.canvas === 'ready'"
SIZES = [(1440, 900), (1280, 800)]
# Every wait's limit: generous, for a machine shared with other work.
LOADED_MS = 90_000

# Run inside `manage.py shell`: the user (with the examples every new user gets) and an
# empty flow; prints {"router": id, "empty": id}.
SETUP = f"""
import json
from django.contrib.auth import get_user_model
from webapp.flows import services
from webapp.flows.models import Flow
user = get_user_model().objects.create_user({USERNAME!r}, password={PASSWORD!r})
router = Flow.objects.filter(owner=user, name="Code or docs question").first()
empty = services.create(user, "Built by the tour", {{"graph": {{"name": "Built by the tour"}},
    "nodes": [], "edges": []}})
print(json.dumps({{"router": router.pk if router else None, "empty": empty.pk}}))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the server did not listen on port {port}")


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(  # noqa: S603 (our own manage.py)
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode:
        raise RuntimeError(done.stderr)
    return done.stdout


# ---- The scripted user ---------------------------------------------------------------------


def node_ids(page: Page) -> list[str]:
    return page.evaluate("Switchyard.canvas.documentJSON().nodes.map((n) => n.id)")


def add_node(page: Page, node_type: str, at: tuple[float, float]) -> str:
    """Drags a palette item onto the canvas at `at` (relative to the canvas); the new id."""
    before = set(node_ids(page))
    box = page.get_by_test_id("canvas").bounding_box()
    assert box is not None
    drag(
        page,
        centre(page, f'[data-testid="palette-{node_type}"]'),
        (box["x"] + at[0], box["y"] + at[1]),
    )
    page.wait_for_function(
        "(n) => Switchyard.canvas.documentJSON().nodes.length > n", arg=len(before)
    )
    (new,) = set(node_ids(page)) - before
    page.wait_for_selector(f'[data-cell-id="{new}"]')
    return new


def connect(page: Page, source: str, out_port: str, target: str, in_port: str) -> None:
    """Wire two ports (tests/support/canvas.py), and wait for the edge to be in the document."""
    count = page.evaluate("Switchyard.canvas.documentJSON().edges.length")
    wire(page, source, out_port, target, in_port)
    page.wait_for_function("(n) => Switchyard.canvas.documentJSON().edges.length > n", arg=count)


def open_form(page: Page, node: str):
    page.click(f'[data-cell-id="{node}"] .sy-title')
    form = page.locator(f'form[data-testid="node-form"][data-node="{node}"][data-ready]')
    expect(form).to_be_visible()
    return form


PROMPT_IS = """([id, prompt]) => Switchyard.canvas.documentJSON().nodes
    .find((n) => n.id === id).config.prompt === prompt"""


def set_prompt(page: Page, node: str, prompt: str, port: str) -> None:
    # A form drawn again while typing loses the text: type again until the node has it.
    for _ in range(5):
        area = open_form(page, node).locator('textarea[name="f_prompt"]')
        area.click()
        page.keyboard.press("Control+a")
        page.keyboard.insert_text(prompt)
        try:
            page.wait_for_function(PROMPT_IS, arg=[node, prompt], timeout=10_000)
            break
        except PlaywrightTimeout:
            continue
    page.wait_for_selector(f'[data-cell-id="{node}"] [port="in:{port}"]')


MODE_IS_CONDITION = """(id) => Switchyard.canvas.documentJSON().nodes
    .find((n) => n.id === id).config.mode === 'condition'"""


def build(page: Page) -> float:
    """Builds input -> llm -> router (condition) -> two llms -> output; seconds taken."""
    started = time.perf_counter()
    source = add_node(page, "input", (60, 80))
    ask = add_node(page, "llm", (330, 80))
    set_prompt(page, ask, "Answer this question: {{ question }}", "question")
    connect(page, source, "value", ask, "question")
    route = add_node(page, "router", (600, 80))
    connect(page, ask, "text", route, "input")
    # The form may be drawn again as the new edge's ports arrive: choose until it holds.
    for attempt in range(5):
        form = open_form(page, route)
        page.wait_for_timeout(300)  # a person's pace: the form is live before they choose
        form.locator('select[name="f_mode"]').select_option("condition")
        try:
            page.wait_for_function(MODE_IS_CONDITION, arg=route, timeout=3000)
            break
        except PlaywrightTimeout:
            if attempt == 4:
                raise
    rows = form.get_by_test_id("rows-conditions")
    expect(rows).to_be_visible()
    # An empty list of rows may hold a hidden row to copy: only visible rows count.
    if not rows.locator('input[name="f_conditions.route"]:visible').count():
        form.get_by_test_id("add-row-conditions").click()
    rows.locator('input[name="f_conditions.route"]:visible').first.fill("yes")
    rows.locator('input[name="f_conditions.expression"]:visible').first.fill('"code" in input')
    page.wait_for_function(
        "(id) => (Switchyard.canvas.documentJSON().nodes.find((n) => n.id === id).config"
        ".conditions || []).length === 1",
        arg=route,
    )
    code = add_node(page, "llm", (60, 330))
    set_prompt(page, code, "Write the code for: {{ task }}", "task")
    connect(page, route, "yes", code, "task")
    prose = add_node(page, "llm", (330, 330))
    set_prompt(page, prose, "Explain in words: {{ task }}", "task")
    connect(page, route, "no", prose, "task")
    out = add_node(page, "output", (600, 330))
    connect(page, code, "text", out, "value")
    connect(page, prose, "text", out, "value")
    page.keyboard.press("Escape")
    page.keyboard.press("Control+s")
    expect(page.get_by_test_id("version")).to_have_text("v2", timeout=20_000)
    return time.perf_counter() - started


def log_in(page: Page, url: str) -> None:
    page.goto(f"{url}/login/")
    page.fill("input[name=username]", USERNAME)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda u: "/login" not in u)


def tour(url: str, ids: dict, out: Path) -> float:
    expect.set_options(timeout=LOADED_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            for width, height in SIZES:
                context = browser.new_context(viewport={"width": width, "height": height})
                context.set_default_timeout(LOADED_MS)
                page = context.new_page()
                log_in(page, url)
                page.goto(f"{url}/flows/{ids['router']}/")
                page.wait_for_function(READY)
                page.wait_for_timeout(500)
                page.click('[data-cell-id="route"] .sy-title')
                page.wait_for_selector('form[data-testid="node-form"][data-ready]')
                page.get_by_test_id("run").click()
                page.get_by_test_id("run-submit").wait_for()
                page.wait_for_timeout(300)
                page.screenshot(path=str(out / f"editor-{width}x{height}.png"))
                if width == 1440:
                    with page.expect_response(
                        lambda r: r.url.endswith("/runs") and r.request.method == "POST"
                    ) as info:
                        page.get_by_test_id("run-submit").click()
                    run_id = info.value.json()["id"]
                    page.goto(f"{url}/runs/{run_id}/")
                    page.wait_for_selector(
                        '[data-testid="run-status"][data-status="succeeded"]', timeout=30_000
                    )
                    page.wait_for_timeout(800)
                    page.screenshot(path=str(out / f"run-{width}x{height}.png"))
                context.close()

            context = browser.new_context(viewport={"width": 1440, "height": 900})
            context.set_default_timeout(LOADED_MS)
            page = context.new_page()
            log_in(page, url)
            page.goto(f"{url}/flows/{ids['empty']}/")
            page.wait_for_function(READY)
            try:
                seconds = build(page)
            except Exception:
                page.screenshot(path=str(out / "build-failed.png"))
                raise
            page.screenshot(path=str(out / "build-1440x900.png"))
            context.close()
        finally:
            browser.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="where the screenshots go")
    args = parser.parse_args()
    out: Path = args.folder
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="editor-tour-") as tmp, FakeAnthropic() as model:
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "DJANGO_"))},
            "DATABASE_URL": f"sqlite:///{tmp}/tour.sqlite3",
            "ANTHROPIC_API_KEY": "test-key",
            "ANTHROPIC_BASE_URL": model.url,
            "DEBUG": "1",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "NO_PROXY": "127.0.0.1,localhost",
        }
        manage(env, "migrate", "--noinput")
        ids = json.loads(manage(env, "shell", "-c", SETUP).strip().splitlines()[-1])
        command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
        with open(Path(tmp) / "daphne.log", "w") as log:
            server = subprocess.Popen(  # noqa: S603 (our own server)
                [*command, "webapp.asgi:application"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                wait_for_port(port)
                seconds = tour(f"http://127.0.0.1:{port}", ids, out)
            finally:
                server.terminate()
                server.wait(timeout=20)
    print(f"screenshots: {', '.join(sorted(str(p) for p in out.glob('*.png')))}")
    print(f"build input -> llm -> router (condition) -> 2 llm -> output: {seconds:.1f} s")


if __name__ == "__main__":
    main()
