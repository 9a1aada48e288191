"""What the canvas (``static/js/canvas/editor.js``) starts from: the ``#editor-data`` JSON.

Every page that draws a flow (the editor, a version, the diff of two, a run, a share
link's flow and run) builds it with ``canvas_payload``, so the keys the script reads are
written once. The ports of each node come from the engine (``ports_for``), so the canvas
never re-implements port logic; the editor asks again through ``/api/editor/ports``.
"""

from __future__ import annotations

import json
from typing import Any

from django.urls import reverse
from pydantic import ValidationError

from graphs import templating
from graphs.nodes.base import Services
from graphs.validation import config_message
from webapp.flows import forms


def canvas_payload(
    doc: dict[str, Any],
    *,
    key: str | int,
    name: str,
    version: int,
    editable: bool = False,
    save_to: int | None = None,
    node_form_url: str = "",
    edge_form_url: str = "",
    palette: dict[str, Any] | None = None,
    public: bool = False,
    services: Services | None = None,
) -> dict[str, Any]:
    """The canvas's start-up data for `doc`.

    `key` names the drafts the editor keeps in the browser: the flow's id in the editor
    only, anything else elsewhere (a read-only page must never show the flow's unsaved
    drafts). `save_to` is the flow the editor saves to; `node_form_url` opens a clicked
    node's configuration; `palette` is the editor's node types. A `public` page (a share
    link, no account) gets no API URL at all: the API would refuse its visitors.
    `services` lend the saved flows the viewer may see, whose inputs and outputs are a
    ``subflow`` node's ports; where none can be looked up (a share link's visitor, a flow
    since deleted), its ports are those its edges use, so the stored flow still draws.

    >>> doc = {"graph": {"name": "hello"}, "edges": [], "nodes": [
    ...     {"id": "q", "type": "input", "config": {"name": "q"}}]}
    >>> data = canvas_payload(doc, key="run-7", name="Hello", version=3)
    >>> data["flowId"], data["editable"], data["ports"]["q"]["outputs"]
    ('run-7', False, ['value'])
    >>> data["urls"]["ports"], data["urls"]["flow"], data["urls"]["nodeForm"]
    ('/api/editor/ports', '', '')
    >>> editor = canvas_payload(doc, key=5, name="Hello", version=3, editable=True, save_to=5)
    >>> editor["urls"]["flow"]
    '/api/flows/5'
    >>> shared = canvas_payload(doc, key="share-1", name="Hello", version=3, public=True)
    >>> set(shared["urls"].values())
    {''}
    """
    if public:
        urls = dict.fromkeys(
            ("flow", "ports", "layout", "validate", "nodeForm", "edgeForm", "rename", "renamePort"),
            "",
        )
    else:
        urls = {
            "flow": "" if save_to is None else reverse("api:flow_save", args=[save_to]),
            "ports": reverse("api:editor_ports"),
            "layout": reverse("api:editor_layout"),
            # Asked while editing for the flow's warnings (they never stop a save).
            "validate": "" if save_to is None else reverse("api:editor_validate"),
            "nodeForm": node_form_url,
            "edgeForm": edge_form_url,
            # A node's key or a merge's port renamed, and what used it (graphs.keys).
            "rename": "" if save_to is None else reverse("api:editor_rename"),
            "renamePort": "" if save_to is None else reverse("api:editor_rename_port"),
        }
    return {
        "flowId": key,
        "name": name,
        "version": version,
        "editable": editable,
        "doc": doc,
        "ports": {node["id"]: _drawn_ports(doc, node, services) for node in doc.get("nodes", [])},
        "palette": palette or {},
        # The canvas colours a node by its type's category (tokens --cat-*).
        "categories": forms.categories(),
        "urls": urls,
    }


def _drawn_ports(doc: dict[str, Any], node: dict[str, Any], services: Services | None) -> dict:
    ports = ports_for(node.get("type", ""), node.get("config") or {}, services)
    if node.get("type") != "subflow" or (ports["known"] and (ports["inputs"] or ports["outputs"])):
        return ports
    edges = [e for e in doc.get("edges", []) if isinstance(e, dict)]
    into = {e.get("target_port") for e in edges if e.get("target") == node.get("id")}
    out = {e.get("source_port") for e in edges if e.get("source") == node.get("id")}
    return {
        **ports,
        "inputs": sorted(p for p in into if isinstance(p, str)),
        "outputs": sorted(p for p in out if isinstance(p, str)),
        "known": True,
    }


def ports_for(type_name: str, config: Any, services: Services | None = None) -> dict[str, Any]:
    """The ports of a node of this type and config, best effort when the config is invalid.

    >>> ports_for("template", {"template": "Hi {{ name }}"})
    {'inputs': ['name'], 'outputs': ['text'], 'problems': [], 'known': True}
    >>> ports_for("llm", {"prompt": "Hi {{ q"})["known"]
    False
    """
    node_type = forms.node_type_named(type_name)
    if node_type is None:
        known = ", ".join(sorted(forms.NODE_TYPES))
        problem = f"unknown node type {type_name!r} (known types: {known})"
        return {"inputs": [], "outputs": [], "problems": [problem], "known": False}
    if not isinstance(config, dict):
        return {
            "inputs": [],
            "outputs": [],
            "problems": ["config must be an object"],
            "known": False,
        }
    problems: list[str] = []
    try:
        parsed = node_type.Config.model_validate(config)
    except ValidationError as exc:
        problems = [config_message(err) for err in exc.errors()]
        # Ports still follow the fields that are fine, e.g. a prompt next to a bad max_tokens.
        fields = node_type.Config.model_fields
        parsed = node_type.Config.model_construct(
            **{k: v for k, v in config.items() if k in fields}
        )
    try:
        for field, source in node_type.templates(parsed).items():
            try:
                templating.check(source)
            except templating.TemplateProblem as exc:
                return _unknown([*problems, f"{field} {exc}"])
        ports = node_type.ports(parsed, services)
        inputs = ports.inputs
        outputs = set(ports.outputs)
    except Exception:  # an invalid config may break the type's port logic in any way
        return _unknown(problems)
    if getattr(parsed, "on_error", None) == "continue":
        outputs.add("error")
    order = json.dumps(config, ensure_ascii=False, default=str)
    return {
        "inputs": None if inputs is None else _ordered(inputs, order),
        "outputs": _ordered(outputs, order),
        "problems": problems,
        "known": True,
    }


def _unknown(problems: list[str]) -> dict[str, Any]:
    return {"inputs": [], "outputs": [], "problems": problems, "known": False}


TRAILING = ("citations", "error")


def _ordered(ports: Any, text: str) -> list[str]:
    """Fixed ports first, then in the order the config mentions them; ``citations`` (a model
    node's cited passages) and ``error`` last: the answer's own ports come first."""
    names = [p for p in ports if isinstance(p, str)]

    def rank(name: str) -> tuple[int, int, str]:
        if name in TRAILING:
            return (2, TRAILING.index(name), name)
        at = max(text.find(f'"{name}"'), text.find("{{ " + name), text.find("{{" + name))
        return (0, 0, name) if at < 0 else (1, at, name)

    return sorted(names, key=rank)
