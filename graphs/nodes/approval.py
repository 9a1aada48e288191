"""``approval``: the run waits for a person, who picks an action and fills a small form.

Its ``run`` renders ``message`` over its inputs and, instead of outputs, asks to wait
(``NodeWaits``) with everything a host needs to show the question: the message, the form's
``fields``, the ``actions``, ``timeout_s`` and the ``approvers``. The run parks (see
"Waiting" in ``graphs.schedule``). A host checks an answer with ``answer`` and resumes the
run with the outputs it gives: the chosen action's port carries ``{action, <field
values>..., by}``. When ``timeout_s`` passes unanswered, the host resumes it with
``timed_out``'s outputs instead, on the port ``timeout``: the wait carries its
``deadline`` (Unix time, set as the node parks), so it survives a restart with the run's
state.

``approvers`` names who may answer: ``<username>`` for a user, ``team:<id>`` for every
member of that team (its number, as in /teams/<id>/). Empty, the flow's editors may. The
host checks it (``may_answer``); a named approver still has to be able to see the run.

>>> config = ApprovalConfig.model_validate({
...     "message": "Refund {{ amount }}?",
...     "fields": [{"name": "note", "label": "Note", "kind": "text"}],
... })
>>> wait = {"kind": "approval", "message": "Refund 12?", "actions": list(config.actions),
...         "fields": [f.model_dump() for f in config.fields]}
>>> answer(wait, "approve", {"note": "fine"}, by={"user": "bob"})
{'approve': {'action': 'approve', 'note': 'fine', 'by': {'user': 'bob'}}}
>>> answer(wait, "maybe", {}, by={"user": "bob"})
Traceback (most recent call last):
...
graphs.nodes.approval.AnswerInvalid: no action 'maybe': the actions are approve, reject
"""

from __future__ import annotations

import math
import re
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from graphs.nodes.base import (
    CommonConfig,
    FieldProblem,
    NodeContext,
    NodeType,
    NodeWaits,
    Services,
    template_ports,
)

TIMEOUT_PORT = "timeout"
# An approver: a username (Django's characters: letters, digits, @.+-_) or team:<id>.
APPROVER = re.compile(r"(?:[\w.@+-]{1,150}|team:[0-9]{1,18})", re.ASCII)
TEAM_PREFIX = "team:"
# Keys of an action's output beside the fields' values: a field may not take them.
RESERVED = frozenset({"action", "by"})


class AnswerInvalid(ValueError):
    """An answer that does not fit the wait; ``field`` names the form field, if any."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class FormField(BaseModel):
    """One field of the form a person fills in when answering."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1, max_length=100, title="Name")
    label: str = Field(default="", max_length=200, title="Label")
    kind: Literal["text", "number", "choice", "boolean"] = Field(default="text", title="Kind")
    choices: list[str] = Field(default_factory=list, max_length=100, title="Choices")
    required: bool = Field(default=False, title="Required")


class ApprovalConfig(CommonConfig):
    message: str = Field(
        default="",
        max_length=100_000,
        description="What the person is asked; its variables are the node's ports.",
        json_schema_extra={"widget": "template", "rows": 4},
    )
    fields: list[FormField] = Field(
        default_factory=list,
        max_length=50,
        description="A small form answered with the action: each field has a name (an "
        "identifier), a label, a kind (text, number, choice, boolean), choices, and "
        "whether it is required. Its values go out with the action.",
    )
    actions: list[str] = Field(
        default_factory=lambda: ["approve", "reject"],
        min_length=1,
        max_length=20,
        description="What the person may answer; each is an output port.",
    )
    timeout_s: float | None = Field(
        default=None,
        gt=0,
        le=365 * 24 * 3600,
        title="Timeout (s)",
        description="Seconds to wait for an answer; then the run goes on from the port timeout.",
    )
    approvers: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="Who may answer: usernames, and team:<id> for a team's members; "
        "empty: the flow's editors.",
    )


class ApprovalNode(NodeType):
    name = "approval"
    label = "Approval"
    description = (
        "Waits for a person to choose an action (approve, reject...) and fill in a form; "
        "the run goes on from that action's port."
    )
    category = "control"
    Config = ApprovalConfig
    default_config = {"message": "Approve?"}
    # It only renders its message: the wait itself holds nothing.
    holds_slot = False

    def templates(self, config: ApprovalConfig) -> dict[str, str]:
        return {"message": config.message}

    def input_ports(self, config: ApprovalConfig) -> frozenset[str]:
        return template_ports(self.templates(config))

    def output_ports(self, config: ApprovalConfig) -> frozenset[str]:
        ports = set(config.actions)
        if config.timeout_s is not None:
            ports.add(TIMEOUT_PORT)
        return frozenset(ports)

    def problems(self, config: ApprovalConfig, services: Services | None) -> list[FieldProblem]:
        found = []
        for action in _repeated(config.actions):
            found.append(FieldProblem("actions", f"action {action!r} is listed twice"))
        for action in config.actions:
            if not action.isidentifier():
                found.append(
                    FieldProblem("actions", f"action {action!r} is not a name (letters, _)")
                )
            elif action == TIMEOUT_PORT:
                found.append(
                    FieldProblem("actions", "'timeout' is the port taken when nobody answers")
                )
        for approver in config.approvers:
            if not APPROVER.fullmatch(approver):
                found.append(
                    FieldProblem(
                        "approvers",
                        f"approver {approver!r} is neither a username (letters, digits, "
                        "@.+-_) nor team:<id>",
                    )
                )
        names = [f.name for f in config.fields]
        for name in _repeated(names):
            found.append(FieldProblem("fields", f"field {name!r} is listed twice"))
        for field in config.fields:
            if not field.name.isidentifier():
                found.append(FieldProblem("fields", f"field {field.name!r} is not a name"))
            elif field.name in RESERVED:
                found.append(
                    FieldProblem("fields", f"field {field.name!r}: that key carries the answer's")
                )
            if field.kind == "choice" and not field.choices:
                found.append(FieldProblem("fields", f"choice field {field.name!r} has no choices"))
            if field.kind != "choice" and field.choices:
                found.append(
                    FieldProblem("fields", f"field {field.name!r} has choices but is {field.kind}")
                )
        return found

    async def run(self, ctx: NodeContext, config: ApprovalConfig, inputs: dict) -> dict:
        message = await ctx.render("message", config.message, inputs)
        wait: dict[str, Any] = {
            "kind": "approval",
            "message": message,
            "fields": [field.model_dump() for field in config.fields],
            "actions": list(config.actions),
            "timeout_s": config.timeout_s,
            "approvers": list(config.approvers),
        }
        if config.timeout_s is not None:
            # Wall-clock, not monotonic: it is compared after restarts, on other machines.
            wait["deadline"] = time.time() + config.timeout_s
        raise NodeWaits(wait)


def answer(
    wait: dict[str, Any], action: str, values: dict[str, Any], *, by: dict[str, Any]
) -> dict[str, Any]:
    """The outputs that answer ``wait`` (what the node asked, as the run state holds it)
    with ``action`` and the form's ``values``; raises AnswerInvalid, naming the field.

    Values as a web form sends them (numbers and booleans as text) are read as their kind;
    a field left out is None (False for a boolean).
    """
    actions = wait.get("actions", [])
    if action not in actions:
        raise AnswerInvalid(f"no action {action!r}: the actions are {', '.join(actions)}")
    fields = {field["name"]: field for field in wait.get("fields", [])}
    for name in values:
        if name not in fields:
            raise AnswerInvalid(f"no field {name!r} in this form", name)
    carried: dict[str, Any] = {"action": action}
    for name, field in fields.items():
        carried[name] = _value(field, values.get(name))
    carried["by"] = by
    return {action: carried}


def deadline(wait: dict[str, Any]) -> float | None:
    """When an unanswered ``wait`` times out (Unix time), or None if it never does."""
    value = wait.get("deadline")
    return (
        float(value) if isinstance(value, int | float) and wait.get("kind") == "approval" else None
    )


def may_answer(wait: dict[str, Any], *, username: str, teams: frozenset[int], editor: bool) -> bool:
    """Whether a user (their username, the ids of their teams, whether they edit the flow)
    may answer ``wait``: one it names, or, when it names nobody, an editor.

    >>> may_answer({"approvers": []}, username="bob", teams=frozenset(), editor=True)
    True
    >>> may_answer({"approvers": ["carol", "team:7"]}, username="bob", teams=frozenset({7}),
    ...            editor=False)
    True
    >>> may_answer({"approvers": ["carol"]}, username="bob", teams=frozenset(), editor=True)
    False
    """
    approvers = wait.get("approvers") or []
    if not approvers:
        return editor
    for approver in approvers:
        if approver.startswith(TEAM_PREFIX):
            team = approver.removeprefix(TEAM_PREFIX)
            if team.isdigit() and int(team) in teams:
                return True
        elif approver == username:
            return True
    return False


def timed_out(wait: dict[str, Any]) -> dict[str, Any]:
    """The outputs of a wait nobody answered in time: its ``timeout`` port."""
    return {TIMEOUT_PORT: {"action": TIMEOUT_PORT, "timeout_s": wait.get("timeout_s")}}


def _value(field: dict[str, Any], value: Any) -> Any:
    name, kind = field["name"], field.get("kind", "text")
    label = field.get("label") or name
    if value is None or value == "":
        if field.get("required") and kind != "boolean":
            raise AnswerInvalid(f"{label!r} is required", name)
        return False if kind == "boolean" else None
    if kind == "text":
        if not isinstance(value, str):
            raise AnswerInvalid(f"{label!r} must be text", name)
        return value
    if kind == "number":
        number = _number(value)
        if number is None:
            raise AnswerInvalid(f"{label!r} must be a number, not {value!r}", name)
        return number
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if value in ("true", "on", "1"):
            return True
        if value in ("false", "off", "0"):
            return False
        raise AnswerInvalid(f"{label!r} must be yes or no, not {value!r}", name)
    choices = field.get("choices", [])
    if value not in choices:
        raise AnswerInvalid(f"{label!r} must be one of {', '.join(choices)}, not {value!r}", name)
    return value


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _repeated(names: list[str]) -> list[str]:
    seen: set[str] = set()
    repeated = []
    for name in names:
        if name in seen and name not in repeated:
            repeated.append(name)
        seen.add(name)
    return repeated
