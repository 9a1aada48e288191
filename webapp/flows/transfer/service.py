"""Export a flow (or one version) as its JSON document; import one as a new flow or as a
new version of an existing flow.

An imported document passes exactly the engine's checks that a save does
(``services.check_graph``: shape, node types, config, ports, cycles, templates) and is
only ever stored, never run: nothing in a file executes on import. A refused document
stores nothing. Text is held to the API's body limit (``settings.API_MAX_BODY_BYTES``).
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.utils.text import slugify

import graphs
from graphs.errors import FlowInvalid, Problem
from webapp.api_schema import NUL_MESSAGE, unstorable
from webapp.flows import services
from webapp.flows.models import Flow, FlowVersion
from webapp.flows.versions.service import document_name
from webapp.teams.models import Membership, Role, Team

IMPORTED = "imported"
DEFAULT_NAME = "Imported flow"


def filename(flow: Flow, version: FlowVersion) -> str:
    """e.g. ``support-triage-v3.json``: safe in a header and on any file system."""
    return f"{slugify(flow.name)[:80] or 'flow'}-v{version.number}.json"


def export_response(flow: Flow, version: FlowVersion) -> HttpResponse:
    """The version's document as a JSON download, as ``python -m graphs validate`` reads it."""
    text = json.dumps(version.graph, indent=2, ensure_ascii=False) + "\n"
    response = HttpResponse(text, content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename(flow, version)}"'
    return response


def read_document(source: Any) -> Any:
    """A document from JSON text (a file or a paste), or as given when already parsed."""
    if not isinstance(source, str | bytes):
        return source
    limit = settings.API_MAX_BODY_BYTES
    size = len(source.encode("utf-8", "surrogatepass") if isinstance(source, str) else source)
    if size > limit:
        raise FlowInvalid([Problem(f"the document is {size:,} bytes; the limit is {limit:,}")])
    if isinstance(source, bytes) and source.startswith(b"\xef\xbb\xbf"):
        # Some editors on Windows start a UTF-8 file with a byte-order mark.
        source = source[3:]
    document = graphs.parse(source)
    # JSON text may spell a NUL character (\u0000), which PostgreSQL cannot store; the
    # engine's own checks find the rest (lone surrogates, non-finite numbers).
    nul = [e for e in unstorable(document, "document") if e["message"] == NUL_MESSAGE]
    if nul:
        raise FlowInvalid([Problem(f"{e['path']} {e['message']}") for e in nul])
    return document


def teams_for_import(user) -> list[Team]:
    """The teams in which `user` may create flows (editor or owner)."""
    return list(
        Team.objects.filter(
            memberships__user=user, memberships__role__in=Role.at_least(Role.EDITOR)
        ).order_by("name", "pk")
    )


def team_for_import(user, team_id: int | None) -> Team | None:
    """The team to import into (None: the personal space). Http404 for a team the user is
    not in, PermissionDenied for one where they only view."""
    if team_id is None:
        return None
    membership = (
        Membership.objects.filter(team_id=team_id, user=user).select_related("team").first()
    )
    if membership is None:
        raise Http404("No such team.")
    if Role.rank(membership.role) < Role.rank(Role.EDITOR):
        raise PermissionDenied("You need the editor role in this team to add flows to it.")
    return membership.team


def import_flow(user, source: Any, name: str | None = None, team: Team | None = None) -> Flow:
    """A new flow (version 1) from a document; FlowInvalid if the engine refuses it.

    A `name` given here names the flow and its document; otherwise the document's does.
    """
    document = services.check_graph(read_document(source), user).document
    name = (name or "").strip()[:200]
    if name:
        document["graph"]["name"] = name
    else:
        name = document_name(document) or DEFAULT_NAME
    return services.create(user, name, document, message=IMPORTED, team=team)


def import_version(flow: Flow, user, source: Any, base_version: int, message: str = "") -> int:
    """A new version of `flow` from a document, on top of `base_version` (the same
    compare-and-set as a save: StaleVersion if someone saved since)."""
    document = read_document(source)
    return services.save(
        flow,
        user,
        document,
        base_version,
        name=document_name(document),
        message=(message.strip() or IMPORTED)[:500],
    )
