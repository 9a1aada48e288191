"""The template gallery: the example flows of examples/ as templates to start a flow from.

A template is an example's file name (its stem: lower-case letters, digits and ``_``). Each
is shown with what it teaches: the orchestration pattern it is the example of, or the node
type it shows. Using one copies it into the user's personal space; a template that calls
other examples (a sub-flow, an agent's flow tool) brings copies of those along, so the
copy runs as the example does.
"""

from __future__ import annotations

from typing import Any

from webapp.flows import services
from webapp.flows.examples import calls, named_examples, with_ids
from webapp.flows.models import Flow

# What each example is the template of, in the gallery's order: patterns first, then node
# types. An example missing here is still shown, last, under "More".
SHOWS: dict[str, tuple[str, str]] = {
    "chain": ("pattern", "Chaining"),
    "router": ("pattern", "Routing"),
    "fanout": ("pattern", "Parallelization"),
    "orchestrator": ("pattern", "Orchestrator-workers"),
    "evaluate": ("pattern", "Evaluator-optimizer"),
    "agent": ("pattern", "Agent"),
    "loop": ("pattern", "Loop"),
    "pipeline": ("pattern", "Pipeline"),
    "chat": ("pattern", "Chat"),
    "http": ("node", "http, parse"),
    "api_pipeline": ("node", "code"),
    "subflow": ("node", "subflow"),
    "map": ("node", "map"),
    "classify": ("node", "structured output"),
    "agent_flow": ("node", "agent with a flow as its tool"),
}


def templates() -> list[dict[str, Any]]:
    """Every template: slug, name, description, kind (pattern | node | more), shows, and
    the node types it uses."""
    found = dict(named_examples())
    order = [name for name in SHOWS if name in found] + sorted(set(found) - set(SHOWS))
    listed = []
    for slug in order:
        document = found[slug]
        kind, shows = SHOWS.get(slug, ("more", ""))
        listed.append(
            {
                "slug": slug,
                "name": document["graph"]["name"],
                "description": document["graph"].get("description", ""),
                "kind": kind,
                "shows": shows,
                "types": sorted({node["type"] for node in document.get("nodes", [])}),
            }
        )
    return listed


def use_template(user, slug: str) -> Flow | None:
    """A new flow of `user`'s copied from template `slug` (None: no such template), with
    copies of the examples it calls created first."""
    found = dict(named_examples())
    if slug not in found:
        return None
    needed: list[str] = []

    def visit(name: str) -> None:
        for called in calls(found[name]):
            if called in found and called not in needed and called != slug:
                visit(called)
        if name not in needed:
            needed.append(name)

    visit(slug)
    ids: dict[str, int] = {}
    flow = None
    for name in needed:
        document = with_ids(found[name], ids)
        message = f"from the template “{document['graph']['name']}”"
        flow = services.create(user, document["graph"]["name"], document, message=message)
        ids[name] = flow.pk
    return flow
