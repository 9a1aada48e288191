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
from django.db import transaction

from graphs.subflows import TOOL_PREFIX, tool_reference
from webapp.execution import plans
from webapp.flows import services
from webapp.flows.models import Flow, FlowVersion


def example_documents() -> list[dict]:
    return [document for _, document in _examples()]


def named_examples() -> list[tuple[str, dict]]:
    """(file name without .json, document) of every example, by file name."""
    return _examples()


def _examples() -> list[tuple[str, dict]]:
    paths = sorted(Path(settings.EXAMPLES_DIR).glob("*.json"))
    return [(path.stem, json.loads(path.read_text())) for path in paths]


def give_examples_to(user) -> None:
    """Copies of every example for a new `user`, in one transaction: two bulk inserts
    (flows, then their versions) for the examples that call no other flow, two more for
    each round of those that call one.

    An example that calls no other flow checks the same for every user, so its check is
    made once per process (per engine services: tests swap them) and each new user's copy
    is stored as that result; the few that call another example are checked for `user`,
    once the copies they call have ids. Signing up paid ~70 ms for fifteen checks and
    thirty inserts, and so did every user a test made."""
    examples = _examples()
    plain = [(name, doc) for name, doc in examples if not calls(doc)]
    calling = dict((name, doc) for name, doc in examples if calls(doc))
    checked = _plain_checked(plain)
    with transaction.atomic():
        ids = _store(user, [(name, checked[name]) for name, _ in plain])
        while calling:
            ready = [name for name, doc in calling.items() if set(calls(doc)) <= set(ids)]
            if not ready:  # examples that call one another in a circle, or a missing one
                raise ValueError(f"examples call flows that are not examples: {sorted(calling)}")
            ids |= _store(
                user,
                [
                    (name, services.check_graph(with_ids(calling.pop(name), ids), user))
                    for name in ready
                ],
            )


# (engine services, the examples as read, their checks): an edited example file or new
# engine services (tests swap them) are checked again.
_plain_cache: tuple[object, list[tuple[str, dict]], dict[str, services.Checked]] | None = None


def _plain_checked(plain: list[tuple[str, dict]]) -> dict[str, services.Checked]:
    global _plain_cache
    engine = plans.engine_services()
    if _plain_cache is None or _plain_cache[0] is not engine or _plain_cache[1] != plain:
        checked = {name: services.check_graph(document) for name, document in plain}
        _plain_cache = (engine, copy.deepcopy(plain), checked)
    return _plain_cache[2]


def _store(user, checked: list[tuple[str, services.Checked]]) -> dict[str, int]:
    """Flows of `user`'s, one per checked document, each at version 1: their ids by name."""
    flows = Flow.objects.bulk_create(
        Flow(owner=user, name=check.document["graph"]["name"], version=1) for _, check in checked
    )
    FlowVersion.objects.bulk_create(
        FlowVersion(
            flow=flow,
            number=1,
            graph=check.document,
            author=user,
            message="example",
            problems=check.problems_json(),
        )
        for flow, (_, check) in zip(flows, checked, strict=True)
    )
    return {name: flow.pk for flow, (name, _) in zip(flows, checked, strict=True)}


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
