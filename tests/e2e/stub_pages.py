"""A page of the test's own HTML that imports this project's ES modules, with no server.

Modules load by URL, so a page set with `page.set_content` (about:blank) cannot import
them: the page is served instead at a made-up origin, through Playwright's routing, with
`/static/...` read from the working tree.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from playwright.sync_api import Page, Route

STATIC = (Path(__file__).parents[2] / "static").resolve()
ORIGIN = "http://stub.switchyard.test"
TYPES = {".js": "text/javascript", ".json": "application/json", ".css": "text/css"}


def open_stub_page(page: Page, html: str, *modules: str) -> None:
    """Show `html`, then run each of `modules` (paths under static/js/) as a module, in order."""

    def serve(route: Route) -> None:
        path = urlparse(route.request.url).path
        if path == "/":
            route.fulfill(body=html, content_type="text/html")
            return
        file = (STATIC.parent / path.lstrip("/")).resolve()
        if path.startswith("/static/") and file.is_relative_to(STATIC) and file.is_file():
            route.fulfill(path=file, content_type=TYPES.get(file.suffix, "text/plain"))
        else:
            route.fulfill(status=404, body="not found")

    page.route(f"{ORIGIN}/**", serve)
    page.goto(f"{ORIGIN}/")
    for module in modules:
        page.add_script_tag(url=f"/static/js/{module}", type="module")
