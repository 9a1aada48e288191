"""The flow editor page and the node configuration form it asks for (htmx)."""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import replace
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.urls import reverse
from django.utils.html import escape
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_POST

from graphs import keys
from graphs.document import is_identifier
from graphs.tools import mcp
from webapp.chat.service import is_chat_flow
from webapp.core.canvas import canvas_payload, ports_for
from webapp.core.model_setup import offline_model_in_use
from webapp.credentials import service as credentials
from webapp.execution.plans import user_services
from webapp.flows import forms
from webapp.flows.access import VIEWER, can_edit_flow, can_own_flow, flow_for_viewer
from webapp.flows.api import warnings_json
from webapp.mcpservers import service as mcp_servers

MAX_LABEL_CHARS = 200
# Inputs and outputs go by their config's name (the run input or output they are): the key
# follows it, and the form shows that one name.
NAMED_TYPES = frozenset({"input", "output"})


def _taken(raw: str, node_id: str) -> set[str]:
    """The other nodes' keys, as the canvas posted them (JSON list)."""
    try:
        ids = json.loads(raw or "[]")
    except ValueError:
        return set()
    return (
        {i for i in ids if isinstance(i, str) and i != node_id} if isinstance(ids, list) else set()
    )


def _follows(node_type_name: str, node_id: str, label: str, taken: set[str]) -> bool:
    """Whether the key is still the one the editor made (llm1, or the label's): it then
    follows the label; a typed key stays as typed."""
    if re.fullmatch(rf"{re.escape(node_type_name)}_?\d*", node_id):
        return True
    return bool(label) and node_id == keys.key_from(label, taken)


def _wanted_key(
    node_type_name: str, node_id: str, post: Any, config: dict[str, Any], taken: set[str]
) -> tuple[str, str]:
    """The key the node should have after this edit, and what is wrong with a typed one."""
    if node_type_name in NAMED_TYPES:
        name = config.get("name")
        if not is_identifier(name) or name == node_id:
            return node_id, ""
        return keys.unique_key(name, taken), ""
    if post.get("key_follows") == "1":
        label = post.get("label", "").strip()
        if not label:
            return node_id, ""
        wanted = keys.key_from(label, taken, fallback=node_id)
        return wanted, ""
    typed = post.get("node_key", "").strip()
    if typed == node_id or not typed:
        return node_id, ""
    problem = keys.key_problem(typed, taken)
    return (node_id, problem) if problem else (typed, "")


def describe(text: str) -> str:
    """A node type's description as HTML: `port` becomes <code>port</code>."""
    return mark_safe(re.sub(r"`([^`]+)`", r"<code>\1</code>", escape(text)))  # noqa: S308


@login_required
@require_GET
def flow_editor(request: HttpRequest, flow_id: int) -> HttpResponse:
    flow = flow_for_viewer(request.user, flow_id)
    version = flow.current()
    doc = version.graph
    editable = can_edit_flow(request.user, flow.pk)
    services = user_services(request.user.pk)
    palette = [
        {
            **item,
            "html": describe(item["description"]),
            "ports": ports_for(item["type"], item["config"]),
        }
        for item in forms.palette()
    ]
    data = canvas_payload(
        doc,
        key=flow.pk,
        name=flow.name,
        version=version.number,
        editable=editable,
        save_to=flow.pk,
        node_form_url=reverse("flow_node_form", args=[flow.pk]),
        edge_form_url=reverse("flow_edge_form", args=[flow.pk]),
        palette={
            item["type"]: {
                "config": item["config"],
                "ports": item["ports"],
                # A wire dropped on the node adds a variable to this field (a new llm has no
                # port yet); only for types whose ports all come from it.
                "variableField": None
                if item["ports"]["inputs"]
                else forms.variable_field(forms.NODE_TYPES[item["type"]]),
            }
            for item in palette
        },
        services=services,
    )
    # The saved version's warnings come with the page: the canvas asks again only once the
    # document differs (an edit, a restored draft).
    data["warnings"] = warnings_json(doc)
    # Why the saved version cannot run yet (it was saved unfinished), as its save said.
    data["problems"] = version.problems
    context = {
        "flow": flow,
        "version": version.number,
        # The version row already read: asking flow.current again would fetch and decode
        # the whole document a second time for its author and date.
        "latest": version,
        "editable": editable,
        # Sharing, transfer and links are the owner's (the Share button opens them).
        "can_share": can_own_flow(request.user, flow.pk),
        "palette": palette,
        "editor_data": data,
        # Shown while no node is selected: what the flow is for (the examples say).
        "description": (doc.get("graph") or {}).get("description", ""),
        # The chat panel tries a chat flow's newest version (webapp/chat/panel.py).
        "chat_flow": editable and is_chat_flow(version),
        # Runs started here are the viewer's: a personal flow calls with their own key.
        "offline_model": offline_model_in_use(flow.team_id, request.user.pk),
        # "Not run yet" would be wrong above the list of its past runs.
        "has_runs": flow.runs.exists(),
    }
    return render(request, "flows/editor.html", context)


@login_required
@require_POST
def node_form(request: HttpRequest, flow_id: int) -> HttpResponse:
    """Open (``config`` posted as JSON) or re-check (form fields posted) one node's form."""
    flow = flow_for_viewer(request.user, flow_id)
    node_type = forms.node_type_named(request.POST.get("type", ""))
    node_id = request.POST.get("node_id", "")
    if node_type is None or not node_id:
        return HttpResponseBadRequest("type and node_id are required")
    label = request.POST.get("label", "")[:MAX_LABEL_CHARS]
    readonly = request.POST.get("readonly") == "1" or not can_edit_flow(request.user, flow.pk)
    editing = "config" not in request.POST
    # The saved flows it may call are those the user may run (a read-only form: see).
    services = user_services(request.user.pk, role=VIEWER if readonly else None)
    offered_mcp = []
    if node_type.name == "agent" and not readonly:
        # Editors only, as credentials: the servers a run of this flow started by them gets.
        servers = mcp_servers.run_servers(flow.team_id, request.user.pk)
        services = replace(services, mcp=servers)
        offered_mcp = mcp.listing(servers)
    if editing:
        config, errors, keep = forms.read_form(node_type, request.POST)
        checked = forms.check(node_type, config, errors, services)
        checked.keep = keep
        key = request.POST.get("form_key", "")
        taken = _taken(request.POST.get("taken", ""), node_id)
        node_key, key_error = _wanted_key(
            node_type.name, node_id, request.POST, checked.config, taken
        )
        follows = request.POST.get("key_follows") == "1"
    else:
        try:
            config = json.loads(request.POST["config"] or "{}")
        except ValueError:
            config = {}
        if not isinstance(config, dict):
            config = {}
        checked = forms.check(node_type, config, services=services)
        key = secrets.token_hex(4)
        taken = _taken(request.POST.get("taken", ""), node_id)
        node_key, key_error = node_id, ""
        follows = _follows(node_type.name, node_id, label, taken)
    fields = forms.fields_for(node_type, config, forms.offered_flows(request.user))
    if node_type.name == "http" and not readonly:
        # Names only, to editors: viewers may not learn which credentials a team keeps.
        offered = credentials.offered_names(flow.team_id, request.user.pk)
        for item in fields:
            if item.name == "auth":
                item.suggestions = offered
    for item in fields:
        if item.name == "tools" and offered_mcp:
            item.choices += [t.name for t in offered_mcp if t.name not in item.choices]
            item.labels = {**item.labels, **{t.name: t.description[:120] for t in offered_mcp}}
    for item in fields:
        item.error = checked.errors.get(item.name, "") or item.error
    payload: dict[str, Any] = {
        "node": node_id,
        "type": node_type.name,
        "label": label,
        "config": checked.config,
        "valid": checked.valid,
        "keep": checked.keep,
        # The node's key after this edit: the canvas renames the node when it differs.
        "key": node_key,
    }
    context = {
        "flow": flow,
        "node_type": node_type,
        "description": describe(node_type.description),
        "node_id": node_id,
        "label": label,
        "node_key": node_key,
        "key_error": key_error,
        "key_follows": follows,
        "taken": json.dumps(sorted(taken)),
        "named": node_type.name in NAMED_TYPES,
        "fields": [f for f in fields if not f.advanced],
        "advanced": [f for f in fields if f.advanced],
        "advanced_open": any(f.error for f in fields if f.advanced),
        "form_errors": checked.errors.get("", ""),
        "valid": checked.valid,
        "key": key if key.isalnum() else secrets.token_hex(4),
        "oob": editing,
        "readonly": readonly,
        "payload": payload if editing else None,
    }
    return render(request, "flows/_node_form.html", context)
