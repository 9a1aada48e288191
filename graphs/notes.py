"""Sticky notes and groups: what a flow's author draws beside the flow to explain it.

They live at the top of the flow document, next to ``nodes`` and ``edges``::

    "notes":  [{"id": "note1", "text": "Why this router", "color": "yellow",
                "position": {"x": 0, "y": 0}, "size": {"width": 220, "height": 120}}],
    "groups": [{"id": "group1", "title": "Drafting", "color": "blue",
                "position": {"x": 0, "y": 0}, "size": {"width": 600, "height": 300},
                "collapsed": false, "nodes": ["write", "review"]}]

The engine never reads them: a flow compiles and runs the same with or without them. They
are checked like the rest of the document, because the editor and the version pages draw
them: ids are identifiers, ``color`` is one of ``COLORS`` (it becomes a CSS class), text is
plain text capped in length (pages escape it), a group's ``nodes`` name nodes of the flow,
each in at most one group, and there are at most ``MAX_NOTES`` notes and ``MAX_GROUPS``
groups.

>>> from graphs.document import IDENTIFIER_RULE, is_identifier
>>> ok = {"notes": [{"id": "n1", "text": "hi", "color": "yellow", "position": {"x": 0, "y": 0}}]}
>>> note_problems(ok, set(), is_identifier, IDENTIFIER_RULE)
[]
>>> bad = {"notes": [{"id": "n1", "color": "red; x"}]}
>>> [p.message for p in note_problems(bad, set(), is_identifier, IDENTIFIER_RULE)]
["notes[0] 'color' must be one of yellow, blue, green, pink, purple, grey"]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeGuard

from graphs.errors import Problem

KEYS = ("notes", "groups")
COLORS = ("yellow", "blue", "green", "pink", "purple", "grey")
MAX_NOTES = 500
MAX_GROUPS = 200
MAX_NOTE_CHARS = 10_000
MAX_TITLE_CHARS = 200
NOTE_KEYS = frozenset({"id", "text", "color", "position", "size"})
GROUP_KEYS = frozenset({"id", "title", "color", "position", "size", "collapsed", "nodes"})


def note_problems(
    doc: dict[str, Any],
    node_ids: set[str],
    is_identifier: Callable[[Any], TypeGuard[str]],
    identifier_rule: str,
) -> list[Problem]:
    """Every problem of the document's notes and groups; [] when it has none. Ids are
    checked with graphs.document's ``is_identifier`` (passed in: that module imports this
    one)."""
    problems: list[Problem] = []
    seen: set[str] = set()
    grouped: dict[str, str] = {}
    for key, cap, allowed, text_key, text_cap in (
        ("notes", MAX_NOTES, NOTE_KEYS, "text", MAX_NOTE_CHARS),
        ("groups", MAX_GROUPS, GROUP_KEYS, "title", MAX_TITLE_CHARS),
    ):
        items = doc.get(key, [])
        if not isinstance(items, list):
            problems.append(Problem(f"'{key}' must be a list"))
            continue
        if len(items) > cap:
            problems.append(Problem(f"{len(items):,} {key}; the limit is {cap:,}"))
            continue
        for index, item in enumerate(items):
            where = f"{key}[{index}]"
            if not isinstance(item, dict):
                problems.append(Problem(f"{where} must be an object"))
                continue
            if unknown := sorted(set(item) - allowed):
                names = ", ".join(map(repr, unknown))
                problems.append(Problem(f"{where} has unknown keys {names}"))
            item_id = item.get("id")
            if not is_identifier(item_id):
                shown = repr(item_id)[:60]
                problems.append(Problem(f"{where} id {shown} must be {identifier_rule}"))
            elif item_id in seen or item_id in node_ids:
                problems.append(Problem(f"{where} id {item_id!r} is already taken"))
            else:
                seen.add(item_id)
            text = item.get(text_key, "")
            if not isinstance(text, str) or len(text) > text_cap:
                problems.append(
                    Problem(f"{where} '{text_key}' must be text of at most {text_cap:,} characters")
                )
            if item.get("color", COLORS[0]) not in COLORS:
                problems.append(Problem(f"{where} 'color' must be one of {', '.join(COLORS)}"))
            problems += _box_problems(where, item)
            if key == "groups":
                problems += _group_problems(where, item, node_ids, grouped)
    return problems


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _box_problems(where: str, item: dict[str, Any]) -> list[Problem]:
    problems = []
    position = item.get("position", {"x": 0, "y": 0})
    if not (isinstance(position, dict) and set(position) == {"x", "y"}) or not all(
        _number(v) for v in position.values()
    ):
        problems.append(Problem(f'{where} \'position\' must be {{"x": number, "y": number}}'))
    size = item.get("size", {"width": 1, "height": 1})
    if not (isinstance(size, dict) and set(size) == {"width", "height"}) or not all(
        _number(v) and 0 < v <= 100_000 for v in size.values()
    ):
        shape = '{"width": number, "height": number}'
        problems.append(Problem(f"{where} 'size' must be {shape}, each above 0, to 100,000"))
    return problems


def _group_problems(
    where: str, item: dict[str, Any], node_ids: set[str], grouped: dict[str, str]
) -> list[Problem]:
    problems = []
    if not isinstance(item.get("collapsed", False), bool):
        problems.append(Problem(f"{where} 'collapsed' must be true or false"))
    members = item.get("nodes", [])
    if not isinstance(members, list):
        return [*problems, Problem(f"{where} 'nodes' must be a list of node ids")]
    for member in members:
        if not isinstance(member, str) or member not in node_ids:
            problems.append(Problem(f"{where} names {repr(member)[:60]}, which is not a node"))
        elif member in grouped:
            problems.append(Problem(f"{where}: node {member!r} is already in another group"))
        else:
            grouped[member] = str(item.get("id"))
    return problems
