"""Creating and saving flows. Every save is a new immutable version; none is ever overwritten.

Every well-formed document is kept, unfinished or not: a version lists its problems
(``FlowVersion.problems``), which stop it running and being published, never being saved.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

import graphs
from graphs import validation
from graphs.errors import FlowInvalid, Problem
from webapp.execution.plans import user_services
from webapp.execution.subflows import SavedFlows
from webapp.flows import groups
from webapp.flows.models import Flow, FlowVersion


@dataclass
class StaleVersion(Exception):
    """Someone saved since the editor loaded `base`; `current` is the newest version."""

    current: int


def starter_graph(name: str, input_name: str = "input", output_name: str = "output") -> dict:
    """The smallest valid flow: one input wired straight to one output."""
    return {
        "directed": True,
        "multigraph": True,
        "graph": {"name": name, "description": ""},
        "nodes": [
            {
                "id": input_name,
                "type": "input",
                "config": {"name": input_name},
                "position": {"x": 0, "y": 100},
            },
            {
                "id": output_name,
                "type": "output",
                "config": {"name": output_name},
                "position": {"x": 300, "y": 100},
            },
        ],
        "edges": [
            {
                "source": input_name,
                "target": output_name,
                "source_port": "value",
                "target_port": "value",
            }
        ],
    }


@dataclass(frozen=True)
class Checked:
    """A well-formed document as it is stored, and why it cannot run yet (maybe nothing)."""

    document: dict[str, Any]
    problems: list[Problem]

    def problems_json(self) -> list[dict[str, Any]]:
        return [problem_json(p) for p in self.problems]


def problem_json(problem: Problem) -> dict[str, Any]:
    """One problem or warning of the engine as stored on a version and told by the API."""
    return {
        "message": problem.message,
        "node": problem.node,
        "edge": list(problem.edge) if problem.edge is not None else None,
        "text": str(problem),
    }


def check_graph(graph: Any, user=None, flow_id: int | None = None) -> Checked:
    """The graph as stored with its problems, or FlowInvalid when it is not well-formed
    (``graphs.validation.malformed``: nothing is stored). Problems never stop a save:
    they stop a run and a publication.

    The flows it calls (webapp.execution.subflows) must be ones `user` may run: the ports
    of a flow someone cannot run are not theirs to learn; `flow_id`, the flow it is saved
    to, may not call itself."""
    loaded = graphs.load(graph)
    services = user_services(getattr(user, "pk", None))
    if flow_id is not None:
        services = replace(services, flows=SavedFlows(user.pk, chain=(str(flow_id),)))
    if bad := validation.malformed(loaded, services):
        raise FlowInvalid(bad)
    return Checked(graphs.dump(loaded), graphs.validate(loaded, services))


def warnings(document: Any) -> list[Problem]:
    """What may not do what its author meant in a flow that can run (``graphs.validation``):
    told with a save, never a reason to refuse one. A document that does not load has none."""
    try:
        return validation.warnings(graphs.load(document))
    except FlowInvalid:
        return []


def create(owner, name: str, graph: Any, message: str = "", team=None) -> Flow:
    """A new flow in `owner`'s personal space, or in `team` (its members' roles apply)."""
    checked = check_graph(graph, owner)
    with transaction.atomic():
        flow = Flow.objects.create(owner=owner, team=team, name=name, version=1)
        FlowVersion.objects.create(
            flow=flow,
            number=1,
            graph=checked.document,
            author=owner,
            message=message,
            problems=checked.problems_json(),
        )
    return flow


def save(
    flow: Flow, author, graph: Any, base_version: int, name: str | None = None, message: str = ""
) -> int:
    """Save a new version on top of `base_version`; StaleVersion if someone saved first.

    The compare-and-set is one conditional UPDATE, so of two saves from the same base
    exactly one wins on every database; the unique (flow, number) constraint backs it up.
    """
    checked = check_graph(graph, author, flow.pk)
    number = base_version + 1
    # A queryset update skips auto_now, so the time is set here.
    fields: dict[str, Any] = {"version": number, "updated": timezone.now()}
    if name:
        fields["name"] = name
    try:
        with transaction.atomic():
            won = Flow.objects.filter(pk=flow.pk, version=base_version).update(**fields)
            if not won:
                raise StaleVersion(
                    current=Flow.objects.values_list("version", flat=True).get(pk=flow.pk)
                )
            FlowVersion.objects.create(
                flow=flow,
                number=number,
                graph=checked.document,
                author=author,
                message=message,
                problems=checked.problems_json(),
            )
            # Everyone with the flow open hears of it once it is committed (groups.py).
            groups.announce_save(flow.pk, number, getattr(author, "username", ""), message)
    except IntegrityError:
        raise StaleVersion(
            current=Flow.objects.values_list("version", flat=True).get(pk=flow.pk)
        ) from None
    flow.refresh_from_db()
    return number
