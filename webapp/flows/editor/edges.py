"""The edge form (htmx): what a loop-back edge's port holds on the first pass (``initial``)
and whether it accumulates (``append``), as ``graphs.schedule`` ("Loops") reads them.

Opened with the flow document as the editor has it (``graph``) and the edge's ends and
settings (``kept``, JSON); only an edge that goes round a loop gets fields, since
elsewhere the settings mean nothing (an edge elsewhere that still carries them gets them
too, to be cleared). Each edit posts the fields back and gets the checked settings in
``[data-edge-config]``, which canvas/panel.js hands to the edge: as node edits do, so undo,
redo, drafts and saving treat them alike.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.views.decorators.http import require_POST

import graphs
from graphs import keys
from graphs.document import is_identifier
from graphs.errors import FlowInvalid
from graphs.validation import APPEND_NEEDS_LIST, goes_round_a_loop
from webapp.flows.access import can_edit_flow, flow_for_viewer

# X6 names edges with UUIDs; the form echoes the name back into HTML and JSON.
EDGE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_INITIAL_CHARS = 20_000


def read_settings(initial_text: str, append: bool) -> tuple[dict[str, Any], dict[str, str]]:
    """The edge's settings as typed, and what is wrong with them, by field.

    An empty ``initial`` is no setting (the port starts empty; ``[]`` when appending).

    >>> read_settings('["first"]', True)
    ({'initial': ['first'], 'append': True}, {})
    >>> read_settings("", False)
    ({}, {})
    >>> read_settings("draft one", False)[1]["initial"]
    'not a JSON value (Expecting value, column 1): put text in "quotes"'
    >>> read_settings('"so far"', True)[1]["append"] == APPEND_NEEDS_LIST
    True
    """
    settings: dict[str, Any] = {}
    errors: dict[str, str] = {}
    text = initial_text.strip()
    if len(text) > MAX_INITIAL_CHARS:
        errors["initial"] = f"{len(text):,} characters; the limit is {MAX_INITIAL_CHARS:,}"
    elif text:
        try:
            settings["initial"] = json.loads(text)
        except ValueError as exc:
            reason = getattr(exc, "msg", str(exc))
            column = getattr(exc, "colno", None)
            where = f", column {column}" if column else ""
            errors["initial"] = f'not a JSON value ({reason}{where}): put text in "quotes"'
    if append:
        settings["append"] = True
        if "initial" in settings and not isinstance(settings["initial"], list):
            errors["append"] = APPEND_NEEDS_LIST
    return settings, errors


def _renamable(document: Any, target: str) -> bool:
    """Whether the edge ends at a merge, whose ports the user names."""
    nodes = document.get("nodes") if isinstance(document, dict) else None
    for node in nodes if isinstance(nodes, list) else []:
        if isinstance(node, dict) and node.get("id") == target:
            return keys.takes_any_port(node)
    return False


def _in_loop(document: Any, source: str, target: str) -> bool:
    try:
        return goes_round_a_loop(graphs.load(document), source, target)
    except FlowInvalid:
        return False


@login_required
@require_POST
def edge_form(request: HttpRequest, flow_id: int) -> HttpResponse:
    """Open (``graph`` and ``kept`` posted as JSON) or re-check (fields posted) an edge's form."""
    flow = flow_for_viewer(request.user, flow_id)
    post = request.POST
    edge_id = post.get("edge_id", "")
    ends = {name: post.get(name, "") for name in ("source", "target", "source_port", "target_port")}
    if not EDGE_ID.fullmatch(edge_id) or not all(is_identifier(v) for v in ends.values()):
        return HttpResponseBadRequest(
            "edge_id (letters, digits, _ or -) and the edge's source, target, source_port "
            "and target_port (identifiers) are required"
        )
    readonly = post.get("readonly") == "1" or not can_edit_flow(request.user, flow.pk)
    editing = "graph" not in post
    if editing:
        initial_text = post.get("initial", "")
        settings, errors = read_settings(initial_text, post.get("append") == "on")
        in_loop = post.get("in_loop") == "1"
        renamable = post.get("renamable") == "1"
        key = post.get("form_key", "")
    else:
        try:
            kept = json.loads(post.get("kept") or "{}")
            document = json.loads(post["graph"] or "{}")
        except ValueError:
            return HttpResponseBadRequest("graph and kept must be JSON")
        kept = kept if isinstance(kept, dict) else {}
        has_initial = "initial" in kept
        initial_text = json.dumps(kept["initial"], ensure_ascii=False) if has_initial else ""
        settings, errors = read_settings(initial_text, kept.get("append") is True)
        in_loop = _in_loop(document, ends["source"], ends["target"])
        renamable = _renamable(document, ends["target"])
        key = secrets.token_hex(4)
    context = {
        "flow": flow,
        "edge_id": edge_id,
        **ends,
        "in_loop": in_loop,
        "renamable": renamable and not readonly,
        "shown": in_loop or bool(settings) or bool(errors),
        "initial_text": initial_text,
        "append": post.get("append") == "on" if editing else settings.get("append", False),
        "errors": errors,
        "valid": not errors,
        "key": key if key.isalnum() else secrets.token_hex(4),
        "oob": editing,
        "readonly": readonly,
        # Only checked settings reach the edge: the form keeps what is typed until then.
        "payload": {"edge": edge_id, "kept": settings} if editing and not errors else None,
    }
    return render(request, "flows/_edge_form.html", context)
