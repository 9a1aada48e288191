"""A node's configuration form, built from its type's pydantic ``Config`` model.

``fields_for`` turns the schema into form fields (text, template textarea, number,
checkbox, select, list of lines, tool checkboxes, JSON) filled from a config;
``read_form`` turns posted form data back into a config, and ``check`` validates it with
the engine's own model and type checks, putting each message on the field it is about.
"""

from __future__ import annotations

import json
import re
import types
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal, Union, get_args, get_origin

from django.http import QueryDict
from pydantic import ValidationError
from pydantic.fields import FieldInfo

from graphs import templating
from graphs.nodes import NODE_TYPES
from graphs.nodes.base import CommonConfig, NodeType
from graphs.settings import default_services
from graphs.validation import config_message
from webapp.flows.services import starter_graph

PREFIX = "f_"
COMMON = tuple(CommonConfig.model_fields)
TEMPLATE_FIELDS = frozenset({"prompt", "system", "template"})

Kind = Literal["text", "template", "number", "checkbox", "select", "lines", "choices", "json"]

HELP = {
    "input.name": "The run input this node reads: letters, digits and _.",
    "output.name": "The run output this node writes: letters, digits and _.",
    "input.default": "Used when a run gives no value. JSON; plain text is taken as a string.",
    "router.default": "The route taken when nothing else chooses one.",
    "router.prompt": "llm mode: what the model reads to choose (default: the input).",
    "routes": "One route per line; each becomes an output port.",
    "rules": 'match mode, JSON: [{"route": "…", "pattern": "regex"}]; the first match wins.',
    "flow": "The inline flow run per item: a flow document with an input named item.",
    "model": "Empty: the server's default model.",
    "max_iterations": "Required on some node of every loop.",
    "timeout_s": "Seconds before the node fails.",
    "retries": "Retries after a transient failure, with backoff.",
    "on_error": "continue: the error goes out on the port error.",
    "tools": "Tools the agent may call.",
    "concurrency": "Items processed at once.",
    "cache": "Reuse this node's output when an identical execution (same type, config, model "
    "and inputs) succeeded before in this flow, instead of running it again.",
}

# A yes/no setting that may also be left to the node type (``bool | None``).
TRISTATE = ("", "true", "false")

# What a node starts with when dropped from the palette.
DEFAULT_CONFIGS: dict[str, dict[str, Any]] = {
    "input": {"name": "input"},
    "output": {"name": "output"},
    "template": {"template": ""},
    "llm": {"prompt": ""},
    "router": {
        "routes": ["yes", "no"],
        "rules": [{"route": "yes", "pattern": "(?i)\\byes\\b"}],
        "default": "no",
    },
    "merge": {},
    "map": {"flow": starter_graph("each item", "item", "result")},
    "agent": {"prompt": "", "tools": ["calculator"]},
}


@dataclass
class FormField:
    name: str
    label: str
    kind: Kind
    value: str = ""
    required: bool = False
    help: str = ""
    choices: list[str] = field(default_factory=list)
    chosen: list[str] = field(default_factory=list)
    step: str = "1"
    minimum: str = ""
    maximum: str = ""
    rows: int = 3
    error: str = ""
    variables: list[str] | None = None
    advanced: bool = False
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def input_name(self) -> str:
        return PREFIX + self.name

    @property
    def checked(self) -> bool:
        return self.value == "on"

    @property
    def options(self) -> list[tuple[str, str]]:
        """A select's (value, text) pairs."""
        return [(c, self.labels.get(c) or c or "—") for c in self.choices]


@dataclass
class Checked:
    """The outcome of reading a posted form."""

    config: dict[str, Any]  # what the node gets: normalized when valid, else as typed
    errors: dict[str, str]  # field name -> message; "" is the whole form
    keep: list[str]  # fields that could not be read: the node keeps its old value
    valid: bool


@cache
def available_tools() -> list[str]:
    return sorted(default_services().tools)


def fields_for(node_type: NodeType, config: dict[str, Any]) -> list[FormField]:
    """The form fields of a node type, filled from ``config`` (defaults where unset)."""
    result = []
    for name, info in node_type.Config.model_fields.items():
        item = _field(name, info, config)
        item.help = HELP.get(f"{node_type.name}.{name}", item.help)
        if name == "cache":
            item.labels[""] = cache_default_label(node_type, config)
        result.append(item)
    main = [f for f in result if not f.advanced]
    advanced = [f for f in result if f.advanced]
    for item in main + advanced:
        if item.kind == "template":
            item.variables, problem = template_variables(item.value)
            item.error = item.error or problem
    return main + advanced


def cache_default_label(node_type: NodeType, config: dict[str, Any]) -> str:
    """What "default" means for this node: its type decides (a router only in llm mode)."""
    try:
        parsed = node_type.Config.model_validate({**config, "cache": None})
        on = node_type.cacheable(parsed, default_services())
    except (ValidationError, ValueError, TypeError):
        return "Default for this node type"
    return f"Default ({'on' if on else 'off'} for this node)"


def template_variables(source: str) -> tuple[list[str] | None, str]:
    """The variables a template reads, in order of appearance, or a problem."""
    if not source:
        return [], ""
    try:
        templating.check(source)
        names = templating.variables(source)
    except templating.TemplateProblem as exc:
        return None, str(exc)
    return sorted(names, key=lambda n: (_first(source, n), n)), ""


def _first(source: str, name: str) -> int:
    found = re.search(r"\b" + re.escape(name) + r"\b", source)
    return found.start() if found else len(source)


def _field(name: str, info: FieldInfo, config: dict[str, Any]) -> FormField:
    annotation, optional = _unwrap(info.annotation)
    value = config.get(
        name, None if info.is_required() else info.get_default(call_default_factory=True)
    )
    item = FormField(
        name=name,
        label=name.replace("_", " ").capitalize().replace("Timeout s", "Timeout (s)"),
        kind="json",
        required=info.is_required(),
        help=HELP.get(name, info.description or ""),
        advanced=name in COMMON,
    )
    limits = {type(m).__name__: m for m in info.metadata}
    if get_origin(annotation) is Literal:
        item.kind = "select"
        item.choices = [str(c) for c in get_args(annotation)]
        if optional:
            item.choices.insert(0, "")
        item.value = "" if value is None else str(value)
    elif annotation is bool and optional:
        # Unset, yes or no: a checkbox could not say "leave it to the node type".
        item.kind = "select"
        item.choices = list(TRISTATE)
        item.labels = {"true": "Always", "false": "Never"}
        item.value = "" if value is None else ("true" if value else "false")
    elif annotation is bool:
        item.kind = "checkbox"
        item.value = "on" if value else ""
    elif annotation in (int, float):
        item.kind = "number"
        item.step = "1" if annotation is int else "any"
        for attr, target in (
            ("ge", "minimum"),
            ("gt", "minimum"),
            ("le", "maximum"),
            ("lt", "maximum"),
        ):
            if (meta := limits.get(attr.capitalize())) is not None:
                setattr(item, target, str(getattr(meta, attr)))
        item.value = "" if value is None else _number_text(value)
    elif annotation is str:
        item.kind = "template" if name in TEMPLATE_FIELDS else "text"
        item.value = "" if value is None else str(value)
        item.rows = 8 if name in ("prompt", "template") else 3
    elif get_origin(annotation) is list and get_args(annotation) == (str,):
        if name == "tools":
            item.kind = "choices"
            item.choices = available_tools()
            item.chosen = [str(v) for v in value or []]
            item.choices += [c for c in item.chosen if c not in item.choices]
        else:
            item.kind = "lines"
            item.value = (
                "\n".join(str(v) for v in value or [])
                if isinstance(value, list)
                else _json_text(value)
            )
            item.rows = 3
    else:
        item.value = "" if value is None else _json_text(value)
        item.rows = 10 if name == "flow" else 4
    return item


def _number_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _json_text(value: Any) -> str:
    if isinstance(value, str) and value:
        try:
            json.loads(value)
        except ValueError:
            return value  # plain text reads back as the same string
    return json.dumps(value, indent=2, ensure_ascii=False)


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """``X | None`` -> (X, True); anything else -> (it, False)."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def read_form(
    node_type: NodeType, data: QueryDict
) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """The config as typed, field errors from reading it, and the fields that could not be read."""
    config: dict[str, Any] = {}
    errors: dict[str, str] = {}
    keep: list[str] = []
    for name, info in node_type.Config.model_fields.items():
        annotation, optional = _unwrap(info.annotation)
        key = PREFIX + name
        raw = data.get(key, "")
        if annotation is bool and optional:
            if raw in ("true", "false"):
                config[name] = raw == "true"
            elif raw:
                errors[name] = "choose default, always or never"
                keep.append(name)
        elif annotation is bool:
            config[name] = key in data
        elif get_origin(annotation) is list and get_args(annotation) == (str,):
            if name == "tools":
                config[name] = data.getlist(key)
            else:
                config[name] = [line.strip() for line in raw.splitlines() if line.strip()]
        elif annotation is str and not optional:
            config[name] = raw
        elif raw.strip() == "":
            continue  # unset: the model's default applies, or "required" is reported
        elif annotation in (int, float):
            try:
                number = float(raw)
                config[name] = int(number) if annotation is int and number.is_integer() else number
            except ValueError:
                errors[name] = "must be a number"
                keep.append(name)
        elif annotation is str or get_origin(annotation) is Literal:
            config[name] = raw
        else:
            try:
                config[name] = json.loads(raw)
            except ValueError as exc:
                if annotation is Any:
                    config[name] = raw
                else:
                    errors[name] = f"not valid JSON: {exc}"
                    keep.append(name)
    return config, errors, keep


def check(
    node_type: NodeType, config: dict[str, Any], errors: dict[str, str] | None = None
) -> Checked:
    """Validate with the type's model and checks; messages land on their fields."""
    errors = dict(errors or {})
    fields = list(node_type.Config.model_fields)
    try:
        parsed = node_type.Config.model_validate(config)
    except ValidationError as exc:
        for err in exc.errors():
            loc = [str(part) for part in err["loc"]]
            message = config_message(err)
            if loc and loc[0] in fields:
                name = loc[0]
                message = message.replace(f"config.{'.'.join(loc)}: ", "")
                if len(loc) > 1:
                    message = f"{'.'.join(loc[1:])}: {message}"
                if err["type"] == "missing":
                    message = "required"
            else:
                name = field_named(message, fields)
                message = message.removeprefix("config: ")
            _add(errors, name, message)
        return Checked(_without_defaults(node_type, config), errors, [], False)
    for name, source in node_type.templates(parsed).items():
        try:
            templating.check(source)
        except templating.TemplateProblem as exc:
            _add(errors, name, str(exc))
    for problem in node_type.problems(parsed, default_services()):
        _add(errors, problem.field, problem.message)
    if errors:
        return Checked(_without_defaults(node_type, config), errors, [], False)
    return Checked(parsed.model_dump(mode="json", exclude_defaults=True), {}, [], True)


def _without_defaults(node_type: NodeType, config: dict[str, Any]) -> dict[str, Any]:
    """The config as typed, minus values equal to their default (as a valid one is dumped)."""
    fields = node_type.Config.model_fields
    return {
        key: value
        for key, value in config.items()
        if key not in fields
        or fields[key].is_required()
        or value != fields[key].get_default(call_default_factory=True)
    }


def field_named(message: str, fields: list[str]) -> str:
    """The field a model-level message is about: the first one it names, else the form."""
    best = ""
    at = len(message) + 1
    for name in fields:
        for word in {name, name.rstrip("s")}:
            found = re.search(r"\b" + re.escape(word) + r"\b", message)
            if found and found.start() < at:
                best, at = name, found.start()
    return best


def _add(errors: dict[str, str], name: str, message: str) -> None:
    errors[name] = f"{errors[name]}; {message}" if errors.get(name) else message


def node_type_named(name: str) -> NodeType | None:
    return NODE_TYPES.get(name)
