"""Types every router of the API shares: ids, the page of a list, the flow document.

Ids, offsets and seqs are 64-bit: larger numbers are a 422 before any query sees them
(SQLite cannot even bind them, and on PostgreSQL they could never match a row anyway).

Every list is a page: ``limit`` and ``offset`` in, ``{items, count, next}`` out, where
``next`` is the URL of the following page (null on the last one).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Annotated, Any, Literal

from django.db.models import QuerySet
from django.http import HttpRequest
from ninja import Field, Schema
from pydantic import BeforeValidator, ConfigDict, WithJsonSchema, create_model

MAX_INT64 = 2**63 - 1
MAX_LIMIT = 500

Id = Annotated[int, Field(ge=1, le=MAX_INT64, description="An id (64-bit).")]
VersionNumber = Annotated[int, Field(ge=1, le=MAX_INT64, description="A version's number.")]


def _no_boolean(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    return value


# Strict mode still takes true for the 1 of a Literal (True == 1 in Python).
Days = Annotated[Literal[1, 7, 30], BeforeValidator(_no_boolean)]


class BodyIn(Schema):
    """A request body's schema. Strict: JSON's types as they are, so that true is not 1 and
    "3" not 3 (query strings, all text, are the lax PageQuery's)."""

    model_config = ConfigDict(strict=True)


class PageQuery(Schema):
    limit: int = Field(50, ge=1, le=MAX_LIMIT, description="At most this many items.")
    offset: int = Field(0, ge=0, le=MAX_INT64, description="Skip this many items first.")


def page_model(name: str, item: Any, doc: str = "") -> type[Schema]:
    """The page schema of a list of ``item``: ``{items, count, next}``."""
    return create_model(
        name,
        __base__=Schema,
        __doc__=doc or f"A page of {getattr(item, '__name__', 'list')} items.",
        items=(list[item], ...),
        count=(int, Field(..., description="Items matching the request, on every page.")),
        next=(
            str | None,
            Field(..., description="The URL of the next page; null on the last one."),
        ),
    )


def next_url(request: HttpRequest, **params: int) -> str:
    """This request's URL (relative) with ``params`` replaced in its query string."""
    query = request.GET.copy()
    for key, value in params.items():
        query[key] = str(value)
    return f"{request.path}?{query.urlencode()}"


def paginate(
    request: HttpRequest,
    rows: QuerySet[Any] | Sequence[Any],
    page: PageQuery,
    out: Callable[[Any], Any] = lambda row: row,
) -> dict[str, Any]:
    """One page of ``rows`` (a queryset is counted and sliced in the database)."""
    count = rows.count() if isinstance(rows, QuerySet) else len(rows)
    end = page.offset + page.limit
    chosen: Iterable[Any] = rows[page.offset : end] if page.offset < count else []
    return {
        "items": [out(row) for row in chosen],
        "count": count,
        "next": next_url(request, offset=end, limit=page.limit) if end < count else None,
    }


# ---- What no database stores --------------------------------------------------------------


NUL_MESSAGE = "must not contain NUL characters"


def string_problem(text: str) -> str | None:
    if "\x00" in text:
        return NUL_MESSAGE
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode (no lone surrogates)"
    return None


def unstorable(data: Any, root: str = "body") -> list[dict[str, str]]:
    """Strings and numbers no database can store, wherever they are in ``data``.

    Iterative, so a deeply nested body cannot exhaust the stack here.
    """
    errors: list[dict[str, str]] = []
    stack: list[tuple[str, Any]] = [(root, data)]
    while stack and len(errors) < 20:
        path, value = stack.pop()
        if isinstance(value, str):
            if message := string_problem(value):
                errors.append({"path": path, "message": message})
        elif isinstance(value, float):
            if not math.isfinite(value):
                errors.append({"path": path, "message": "must be a finite number"})
        elif isinstance(value, dict):
            for key, item in value.items():
                if message := string_problem(key):
                    errors.append({"path": path, "message": f"a key {message}"})
                name = key.replace("\x00", "\\u0000")
                stack.append((f"{path}.{name}", item))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(value))
    return sorted(errors, key=lambda e: e["path"])


# ---- The flow document (graphs/document.py): typed for the schema, checked by the engine ---


class Position(Schema):
    x: float
    y: float


class FlowNode(Schema):
    model_config = ConfigDict(extra="allow")

    id: str = Field(description="An identifier: a letter or _, then letters, digits, _ or -.")
    type: str = Field(description="input, output, template, llm, router, merge, map, agent")
    config: dict[str, Any] = Field(default_factory=dict, description="The type's settings.")
    position: Position | None = None
    label: str | None = None


class FlowEdge(Schema):
    model_config = ConfigDict(extra="allow")

    source: str
    target: str
    source_port: str
    target_port: str
    key: int | str | None = None


class FlowGraphAttrs(Schema):
    model_config = ConfigDict(extra="allow")

    name: str | None = None
    description: str | None = None


class Size(Schema):
    width: float
    height: float


class FlowNote(Schema):
    """A sticky note (graphs/notes.py): drawn beside the flow, never run."""

    id: str = Field(description="An identifier, unique among nodes, notes and groups.")
    text: str = Field("", description="Plain text, at most 10,000 characters.")
    color: str = Field("yellow", description="yellow, blue, green, pink, purple or grey.")
    position: Position | None = None
    size: Size | None = None


class FlowGroup(Schema):
    """A titled frame round some nodes (graphs/notes.py): drawn, never run."""

    id: str = Field(description="An identifier, unique among nodes, notes and groups.")
    title: str = Field("", description="Plain text, at most 200 characters.")
    color: str = Field("blue", description="yellow, blue, green, pink, purple or grey.")
    position: Position | None = None
    size: Size | None = None
    collapsed: bool = False
    nodes: list[str] = Field(
        default_factory=list, description="Its nodes' ids; a node is in one group at most."
    )


class FlowDocument(Schema):
    """``networkx.node_link_data(G, edges="edges")`` JSON (README, "The flow document")."""

    model_config = ConfigDict(extra="allow")

    directed: bool | None = None
    multigraph: bool | None = None
    graph: FlowGraphAttrs = Field(default_factory=FlowGraphAttrs)
    nodes: list[FlowNode]
    edges: list[FlowEdge]
    notes: list[FlowNote] = Field(default_factory=list)
    groups: list[FlowGroup] = Field(default_factory=list)


class RunEventOut(Schema):
    """One run event (graphs/events.py lists each type's fields; keys are only ever added)."""

    model_config = ConfigDict(extra="allow")

    seq: int = Field(description="1, 2, 3 ... without gaps.")
    ts: float = Field(description="When, in seconds since the epoch (the engine's clock).")
    # A string, not an enum: a log recorded by a newer engine still reads.
    type: str = Field(
        description="run_started, node_started, node_delta, node_thinking (the model's "
        "streamed thinking, apart from its text), node_progress, node_item (a "
        "map's item's own event), node_retrying, node_finished, node_skipped, node_failed or "
        "run_finished."
    )
    node: str | None = Field(None, description="Node events: the node.")
    iteration: int | None = Field(None, description="Node events: the node's visit, from 1.")


# ---- A graph diff (graphs/diff.py): versions' diff and a comparison's ----------------------


class KeyChangeOut(Schema):
    key: str = Field(
        description="type, label, position, config.<name>; name, description; initial, append."
    )
    kind: str = Field(description="added, removed or changed")
    before: Any = Field(None, description="Absent when added.")
    after: Any = Field(None, description="Absent when removed.")


class NodeRefOut(Schema):
    id: str
    type: str
    label: str


class NodeChangeOut(NodeRefOut):
    changes: list[KeyChangeOut]


class NodeMoveOut(Schema):
    id: str
    before: dict[str, float] | None = Field(description="{x, y}; null when it had none.")
    after: dict[str, float] | None


class EdgeRefOut(Schema):
    source: str
    source_port: str
    target: str
    target_port: str


class NodeChangesOut(Schema):
    added: list[NodeRefOut]
    removed: list[NodeRefOut]
    changed: list[NodeChangeOut]
    moved: list[NodeMoveOut] = Field(description="Moves only, not counted as changes.")


class EdgeChangeOut(EdgeRefOut):
    changes: list[KeyChangeOut] = Field(description="Its loop settings: initial, append.")


class EdgeChangesOut(Schema):
    added: list[EdgeRefOut]
    removed: list[EdgeRefOut]
    changed: list[EdgeChangeOut] = Field(description="In both, with other loop settings.")


class GraphDiffOut(Schema):
    is_empty: bool
    summary: str = Field(description="One line for people: 2 nodes added, 1 changed ...")
    graph: list[KeyChangeOut] = Field(description="The flow's own name and description.")
    nodes: NodeChangesOut
    edges: EdgeChangesOut


def inline_schema(model: type[Schema]) -> dict[str, Any]:
    """``model``'s JSON schema with its ``$defs`` inlined, for ``WithJsonSchema`` (which
    cannot carry references of its own). The models it serves have no cycles."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    return inline(schema)


# A request's flow document: documented as one, taken as any JSON. The engine explains what
# is wrong with a document (naming the node or edge) better than a schema validator can.
FLOW_DOCUMENT_EXAMPLE = {
    "graph": {"name": "Echo"},
    "nodes": [
        {"id": "question", "type": "input", "config": {"name": "question"}},
        {"id": "answer", "type": "output", "config": {"name": "answer"}},
    ],
    "edges": [
        {"source": "question", "target": "answer", "source_port": "value", "target_port": "value"}
    ],
}
FLOW_DOCUMENT_SCHEMA = {**inline_schema(FlowDocument), "examples": [FLOW_DOCUMENT_EXAMPLE]}
# Answers carry documents and events exactly as stored (no field added, no 0 made 0.0):
# typed in the schema, passed through as they are.
FlowDocumentOut = Annotated[dict[str, Any], WithJsonSchema(FLOW_DOCUMENT_SCHEMA)]
EventOut = Annotated[dict[str, Any], WithJsonSchema(inline_schema(RunEventOut))]


class UsageOut(Schema):
    input_tokens: int
    output_tokens: int
