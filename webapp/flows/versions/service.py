"""A flow's versions: list, read, compare and restore them.

Versions are never changed. Restoring one saves its graph again as a new version through
``services.save``, so it takes part in the same compare-and-set as every save: a restore
and a save from the same base version give one new version and one StaleVersion.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404

from graphs.diff import Edge, GraphDiff, diff_graphs
from webapp.execution.plans import compiled_version
from webapp.flows import services
from webapp.flows.models import Flow, FlowVersion, Publication


def history(flow: Flow) -> QuerySet[FlowVersion]:
    """The flow's versions, newest first, with their authors."""
    return flow.versions.select_related("author").order_by("-number")


def get(flow: Flow, number: int) -> FlowVersion:
    """One version of the flow, or Http404 (a missing version looks like any missing page)."""
    version = flow.versions.select_related("author").filter(number=number).first()
    if version is None:
        raise Http404(f"{flow.name} has no version {number}.")
    return version


def latest(flow: Flow) -> FlowVersion:
    return get(flow, flow.version)


def restore_message(number: int) -> str:
    return f"restored v{number}"


def restore(flow: Flow, user, number: int, base_version: int) -> int:
    """Save version `number`'s graph as a new version on top of `base_version`.

    Raises StaleVersion when someone saved since `base_version`, FlowInvalid when the old
    graph breaks rules the engine has gained since (nothing is stored either way).
    """
    old = get(flow, number)
    return services.save(
        flow,
        user,
        old.graph,
        base_version,
        name=document_name(old.graph),
        message=restore_message(number),
    )


def document_name(graph: Any) -> str | None:
    """The flow name a document carries, cut to what a Flow can hold."""
    attrs = graph.get("graph") if isinstance(graph, dict) else None
    name = attrs.get("name") if isinstance(attrs, dict) else None
    if not isinstance(name, str):
        return None
    return name.strip()[:200] or None


def diff(flow: Flow, a: int, b: int) -> tuple[FlowVersion, FlowVersion, GraphDiff]:
    """What changed from version `a` to version `b` (either may be the older)."""
    before, after = get(flow, a), get(flow, b)
    return before, after, diff_graphs(before.graph, after.graph)


def diff_canvas(before: dict[str, Any], after: dict[str, Any], changes: GraphDiff) -> dict:
    """Version `after` as a document to draw, with `before`'s removed nodes and edges
    put back (where they were) so the canvas can show them greyed, and the marks
    for each node and edge: added, changed or removed."""
    removed_ids = {node.id for node in changes.removed}
    doc = {
        **after,
        "nodes": [
            *after.get("nodes", []),
            *(n for n in before.get("nodes", []) if n.get("id") in removed_ids),
        ],
        "edges": [*after.get("edges", []), *(_edge_doc(e) for e in changes.edges_removed)],
    }
    nodes = {node.id: "added" for node in changes.added}
    nodes |= {node.id: "changed" for node in changes.changed}
    nodes |= dict.fromkeys(removed_ids, "removed")
    edges = [{**e._asdict(), "kind": "added"} for e in changes.edges_added]
    edges += [{**e._asdict(), "kind": "removed"} for e in changes.edges_removed]
    edges += [{**c.edge._asdict(), "kind": "changed"} for c in changes.edges_changed]
    return {"doc": doc, "marks": {"nodes": nodes, "edges": edges}}


def _edge_doc(edge: Edge) -> dict[str, str]:
    return {
        "source": edge.source,
        "target": edge.target,
        "source_port": edge.source_port,
        "target_port": edge.target_port,
    }


# Publishing: which version runs from outside the editor


def publish(flow: Flow, user, number: int) -> FlowVersion:
    """Make version `number` the one API runs (and later hooks, schedules, chat) use.

    Http404 for a version the flow does not have; FlowInvalid when it cannot run (nothing
    changes). Publishing the published version again records nothing.
    """
    version = get(flow, number)
    compiled_version(version, getattr(user, "pk", None))
    with transaction.atomic():
        locked = Flow.objects.select_for_update().get(pk=flow.pk)
        if locked.published_id != version.pk:
            Flow.objects.filter(pk=flow.pk).update(published=version)
            Publication.objects.create(flow=flow, version=version, by=user)
    flow.published = version
    return version


def unpublish(flow: Flow, user) -> bool:
    """Runs from outside go back to the newest version; False when none was published."""
    with transaction.atomic():
        changed = Flow.objects.filter(pk=flow.pk, published__isnull=False).update(published=None)
        if changed:
            Publication.objects.create(flow=flow, version=None, by=user)
    flow.published = None
    return bool(changed)


def publications(flow: Flow) -> QuerySet[Publication]:
    """Who published what and when, newest first."""
    return flow.publications.select_related("version", "by")
