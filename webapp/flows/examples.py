"""The example flows every new user starts with, read from the repository's examples/.

An example may call another (``flow:classify`` among an agent's tools, a subflow's
``flow``): there a reference is the other example's file name, as the command line reads
it (graphs.flowfiles); here it becomes the id of the user's own copy, so the flows it
calls are created first.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from django.conf import settings

from graphs.subflows import TOOL_PREFIX, tool_reference
from webapp.flows import services


def example_documents() -> list[dict]:
    return [document for _, document in _examples()]


def named_examples() -> list[tuple[str, dict]]:
    """(file name without .json, document) of every example, by file name."""
    return _examples()


def _examples() -> list[tuple[str, dict]]:
    paths = sorted(Path(settings.EXAMPLES_DIR).glob("*.json"))
    return [(path.stem, json.loads(path.read_text())) for path in paths]


def give_examples_to(user) -> None:
    pending = dict(_examples())
    ids: dict[str, int] = {}
    while pending:
        ready = [name for name, doc in pending.items() if set(calls(doc)) <= set(ids)]
        if not ready:  # examples that call one another in a circle, or a missing one
            raise ValueError(f"examples call flows that are not examples: {sorted(pending)}")
        for name in ready:
            document = with_ids(pending.pop(name), ids)
            flow = services.create(user, document["graph"]["name"], document, message="example")
            ids[name] = flow.pk


def calls(document: dict) -> list[str]:
    """The references of the flows a document's nodes call."""
    found = []
    for node in document.get("nodes", []):
        config = node.get("config") or {}
        if node.get("type") == "subflow":
            found.append(config.get("flow"))
        for tool in config.get("tools") or [] if node.get("type") == "agent" else []:
            if (reference := tool_reference(tool)) is not None:
                found.append(reference)
    return found


def with_ids(document: dict, ids: dict[str, int]) -> dict:
    """A copy of the document whose references name the flows in `ids` instead."""
    document = copy.deepcopy(document)
    for node in document.get("nodes", []):
        config = node.get("config") or {}
        if node.get("type") == "subflow" and config.get("flow") in ids:
            config["flow"] = str(ids[config["flow"]])
        if node.get("type") == "agent" and isinstance(config.get("tools"), list):
            config["tools"] = [
                f"{TOOL_PREFIX}{ids[ref]}" if (ref := tool_reference(tool)) in ids else tool
                for tool in config["tools"]
            ]
    return document
