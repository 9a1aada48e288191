"""The Content-Security-Policy (webapp/csp.py): on every response, and nothing in the pages
that it would refuse. The browser side is tests/e2e, which fails on any violation."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

ROOT = Path(__file__).parents[2]
TEMPLATES = ROOT / "templates"
X6 = ROOT / "static" / "vendor" / "x6.min.js"

# What the policy refuses in markup: inline scripts, handlers, style attributes, htmx's
# evaluated attributes and javascript: URLs.
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.I)
# An attribute may follow a template tag directly: {% if x %}style="..."{% endif %}.
HANDLER = re.compile(r"(?<![\w-])(on[a-z]+|hx-on[:\w-]*)\s*=", re.I)
STYLE_ATTRIBUTE = re.compile(r"(?<![\w-])style\s*=", re.I)
JAVASCRIPT_URL = re.compile(r"javascript:", re.I)


def directives(header: str) -> dict[str, list[str]]:
    parts = (part.split() for part in header.split(";") if part.strip())
    return {name: sources for name, *sources in parts}


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/login/", "/api/flows", "/no/such/page/"])
def test_every_response_carries_a_policy_with_no_inline_script_or_eval(client: Client, path):
    policy = directives(client.get(path)["Content-Security-Policy"])
    assert policy["script-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'self'"]
    assert policy["form-action"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    # The live view and the editor's presence socket: 'self' covers ws: only in CSP 3.
    assert policy["connect-src"] == ["'self'", "ws://testserver"]
    assert not any("unsafe" in source for sources in policy.values() for source in sources)


@pytest.mark.django_db
def test_a_secure_request_may_connect_to_its_own_wss_origin(client: Client):
    response = client.get("/login/", secure=True)
    policy = directives(response["Content-Security-Policy"])
    assert policy["connect-src"] == ["'self'", "wss://testserver"]


def test_no_template_holds_an_inline_script_handler_or_style():
    offences = []
    for template in sorted(TEMPLATES.rglob("*.html")):
        text = template.read_text()
        for what, pattern in [
            ("an inline script", INLINE_SCRIPT),
            ("an inline handler", HANDLER),
            ("a style attribute", STYLE_ATTRIBUTE),
            ("a javascript: URL", JAVASCRIPT_URL),
        ]:
            for found in pattern.finditer(text):
                context = text[max(0, found.start() - 40) : found.end() + 40]
                offences.append(f"{template.relative_to(TEMPLATES)}: {what}: {context!r}")
    assert offences == []


def csp_hash(js_string: str) -> str:
    """The CSP source for a stylesheet given as the body of a JS string literal."""
    css = json.loads('"' + js_string + '"')
    return "'sha256-" + base64.b64encode(hashlib.sha256(css.encode()).digest()).decode() + "'"


def test_the_x6_stylesheet_hashes_are_those_of_the_vendored_x6():
    # X6 writes each stylesheet into a <style> element (function "Rr" in the minified
    # build); the policy admits them by hash. A new X6 with other CSS fails here first.
    source = X6.read_text()
    sheets = re.findall(r'Rr\((?:"[a-z]+"|this\.name),"((?:[^"\\]|\\.)*)"\)', source)
    vendored = {csp_hash(sheet) for sheet in sheets}
    assert set(settings.X6_STYLESHEETS.values()) <= vendored
    assert set(settings.X6_STYLESHEETS.values()) <= set(settings.SECURE_CSP["style-src"])


@pytest.mark.django_db
def test_under_debug_only_djangos_own_error_page_goes_without_a_policy(client: Client, settings):
    settings.DEBUG = True
    assert "Content-Security-Policy" in client.get("/login/")
    # Built of inline styles and scripts, and only ever served with DEBUG on.
    response = client.get("/no/such/page/")
    assert response.status_code == 404 and b"NONE,NOARCHIVE" in response.content
    assert "Content-Security-Policy" not in response
