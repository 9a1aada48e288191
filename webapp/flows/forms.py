"""A node's configuration form, generated from what its type says about itself.

The node type (``graphs.nodes``) states the facts: its ``Config`` model, each field's help
(``description``), label (``title``) and ``widget``, its ``default_config`` and
``category``, and ``problems()`` on the field they are about. This module only renders
them: ``kind_of`` picks a field's kind (its widget, else what its annotation implies), and
``KINDS`` holds, per kind, how a value is shown (``fill``) and how a post is read back
(``read``). ``fields_for`` builds the form from a config, ``read_form`` turns posted form
data back into a config, and ``check`` validates it with the engine's own model and type
checks, putting each message on the field it is about.

Every page reads the registry through this module (``NODE_TYPES``), so a node type added
to it gets its palette entry, form, help and colour with no other change here.
"""

from __future__ import annotations

import json
import re
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal, Union, get_args, get_origin

from django.http import QueryDict
from pydantic import ValidationError
from pydantic.fields import FieldInfo

from graphs import nodes, templating
from graphs.nodes.base import CommonConfig, NodeType, Services
from graphs.settings import default_services
from graphs.subflows import TOOL_PREFIX
from graphs.tools import mcp
from graphs.validation import config_message
from webapp.core.model_setup import known_models
from webapp.flows.access import editable_flows

# The node types the web app offers.
NODE_TYPES: Mapping[str, NodeType] = nodes.NODE_TYPES

PREFIX = "f_"
COMMON = tuple(CommonConfig.model_fields)

# The controls _editor_field.html draws.
Html = Literal[
    "text",
    "template",
    "number",
    "checkbox",
    "select",
    "lines",
    "choices",
    "json",
    "schema",
    "rows",
]

# A yes/no setting that may also be left to the node type (``bool | None``).
TRISTATE = ("", "true", "false")


@dataclass
class FormField:
    name: str
    label: str
    kind: Html
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
    mono: bool = False  # identifiers: monospace, no spell checking
    # Offered while typing (an <input list> and its <datalist>); anything else may be typed.
    suggestions: list[str] = field(default_factory=list)
    # rows: one list of cells per record, and the cells of a new, empty one.
    records: list[list[Cell]] = field(default_factory=list)
    blank: list[Cell] = field(default_factory=list)
    # Shown only while another field holds one of these values (its input name -> values).
    when: tuple[str, str] | None = None
    off: bool = False  # hidden now: the other field holds none of those values

    @property
    def when_input(self) -> str:
        return PREFIX + self.when[0] if self.when else ""

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

    @property
    def option_groups(self) -> list[ChoiceGroup]:
        """Checkbox choices, those of MCP servers (``mcp:<server>/<tool>``) under their
        server, after the others: a server may offer dozens of tools."""
        plain = ChoiceGroup("", [])
        servers: dict[str, ChoiceGroup] = {}
        for value, text in self.options:
            found = mcp.reference(value)
            if found is None or not found[1]:
                plain.choices.append((value, value, "" if text == value else text))
                continue
            server, tool = found
            group = servers.setdefault(server, ChoiceGroup(server, []))
            group.choices.append((value, tool, "" if text == value else text))
        return [plain, *(servers[name] for name in sorted(servers))]


@dataclass
class ChoiceGroup:
    """Checkbox choices under one heading (an MCP server's name; "": none): each is
    (value, the name shown, its description)."""

    server: str
    choices: list[tuple[str, str, str]]


@dataclass(frozen=True)
class Cell:
    """One value of a ``rows`` field's record: a column of its model."""

    name: str
    title: str
    placeholder: str
    value: str


@dataclass
class Checked:
    """The outcome of reading a posted form."""

    config: dict[str, Any]  # what the node gets: normalized when valid, else as typed
    errors: dict[str, str]  # field name -> message; "" is the whole form
    keep: list[str]  # fields that could not be read: the node keeps its old value
    valid: bool


# ---- The registry, as pages show it ------------------------------------------------------


def node_type_named(name: str) -> NodeType | None:
    return NODE_TYPES.get(name)


def palette() -> list[dict[str, Any]]:
    """One entry per node type: what the palette shows and what a dropped node starts with."""
    return [
        {
            "type": name,
            "label": node_type.label,
            "description": node_type.description,
            "category": node_type.category,
            # A copy: the page may be changed before it is serialised, the type never.
            "config": json.loads(json.dumps(node_type.default_config)),
        }
        for name, node_type in NODE_TYPES.items()
    ]


def variable_field(node_type: NodeType) -> str | None:
    """The field whose template's variables are the node's input ports (an llm's prompt),
    or None: a wire dropped on such a node adds a variable there (canvas/wiring.js).

    >>> variable_field(NODE_TYPES["llm"]), variable_field(NODE_TYPES["merge"])
    ('prompt', None)
    """
    for spec in specs(node_type):
        if spec.kind == "template" and spec.name not in COMMON and not spec.hints.get("advanced"):
            return spec.name
    return None


def categories() -> dict[str, str]:
    """Node type -> its category, for the canvas (the CSS gives each category its colour)."""
    return {name: node_type.category for name, node_type in NODE_TYPES.items()}


def category_of(type_name: str) -> str:
    node_type = NODE_TYPES.get(type_name)
    return node_type.category if node_type is not None else ""


@cache
def available_tools() -> list[str]:
    return sorted(default_services().tools)


# ---- Field kinds -------------------------------------------------------------------------


class Unreadable(ValueError):
    """A posted value that cannot become a config value; the node keeps its old one."""


UNSET: Any = object()  # read: leave the key out (the model's default applies, or "required")


@dataclass(frozen=True)
class Spec:
    """One config field of one node type, as the form needs it."""

    node_type: NodeType
    name: str
    info: FieldInfo
    annotation: Any  # without ``| None``
    optional: bool
    hints: dict[str, Any]  # the field's json_schema_extra: widget, rows
    kind: str


Fill = Callable[[FormField, Any, Spec, dict[str, Any]], None]
Read = Callable[[QueryDict, Spec], Any]


@dataclass(frozen=True)
class FieldKind:
    """How one kind of field is shown (``fill`` sets the value and options) and read back."""

    html: Html
    fill: Fill
    read: Read


def _fill_text(item: FormField, value: Any, spec: Spec, config: dict[str, Any]) -> None:
    item.value = "" if value is None else str(value)
    item.rows = spec.hints.get("rows", 3)


def _fill_code(item: FormField, value: Any, spec: Spec, config: dict[str, Any]) -> None:
    _fill_text(item, value, spec, config)
    item.mono = True


def _read_text(data: QueryDict, spec: Spec) -> Any:
    raw = data.get(PREFIX + spec.name, "")
    # A required text may be empty (the model says whether that is allowed); an optional
    # one left blank is unset.
    return raw if not spec.optional or raw.strip() else UNSET


def _fill_select(item: FormField, value: Any, spec: Spec, config: dict[str, Any]) -> None:
    item.choices = [str(c) for c in get_args(spec.annotation)]
    if spec.optional:
        item.choices.insert(0, "")
    item.value = "" if value is None else str(value)


def _read_choice(data: QueryDict, spec: Spec) -> Any:
    raw = data.get(PREFIX + spec.name, "")
    return raw if raw.strip() else UNSET


def _fill_tristate(item: FormField, value: Any, spec: Spec, config: dict[str, Any]) -> None:
    # Unset, yes or no: a checkbox could not say "leave it to the node type".
    item.choices = list(TRISTATE)
    item.labels = {"true": "Always", "false": "Never"}
    item.value = "" if value is None else ("true" if value else "false")


def _fill_cache(item: FormField, value: Any, spec: Spec, config: dict[str, Any]) -> None:
    _fill_tristate(item, value, spec, config)
    item.labels[""] = cache_default_label(spec.node_type, config)


def _read_tristate(data: QueryDict, spec: Spec) -> Any:
    raw = data.get(PREFIX + spec.name, "")
    if raw in ("true", "false"):
        return raw == "true"
    if raw:
        raise Unreadable("choose default, always or never")
    return UNSET


def _fill_checkbox(item: FormField, value: Any, spec: Spec, config: dict[str, Any]) -> None:
    item.value = "on" if value else ""


def _read_checkbox(data: QueryDict, spec: Spec) -> Any:
    return PREFIX + spec.name in data


LIMITS = (("ge", "minimum"), ("gt", "minimum"), ("le", "maximum"), ("lt", "maximum"))


def _fill_number(item: FormField, value: Any, spec: Spec, config: dict[str, Any]) -> None:
    item.step = "1" if spec.annotation is int else "any"
    limits = {type(m).__name__: m for m in spec.info.metadata}
    for attr, target in LIMITS:
        if (meta := limits.get(attr.capitalize())) is not None:
            setattr(item, target, str(getattr(meta, attr)))
    item.value = "" if value is None else _number_text(value)


def _read_number(data: QueryDict, spec: Spec) -> Any:
    raw = data.get(PREFIX + spec.name, "")
    if not raw.strip():
        return UNSET
    try:
        number = float(raw)
    except ValueError:
        raise Unreadable("must be a number") from None
    return int(number) if spec.annotation is int and number.is_integer() else number


def _fill_lines(item: FormField, value: Any, spec: Spec, config: dict[str, Any]) -> None:
    item.value = (
        "\n".join(str(v) for v in value or []) if isinstance(value, list) else _json_text(value)
    )
    item.rows = spec.hints.get("rows", 3)


def _read_lines(data: QueryDict, spec: Spec) -> Any:
    raw = data.get(PREFIX + spec.name, "")
    return [line.strip() for line in raw.splitlines() if line.strip()]


def _fill_tools(item: FormField, value: Any, spec: Spec, config: dict[str, Any]) -> None:
    # A copy: the list is cached, and offers of one user's flows and servers are added to it.
    item.choices = list(available_tools())
    item.chosen = [str(v) for v in value or []]
    item.choices += [c for c in item.chosen if c not in item.choices]


def _fill_flow(item: FormField, value: Any, spec: Spec, config: dict[str, Any]) -> None:
    item.value = "" if value is None else str(value)
    item.choices = [item.value]


def _read_tools(data: QueryDict, spec: Spec) -> Any:
    return data.getlist(PREFIX + spec.name)


def _fill_json(item: FormField, value: Any, spec: Spec, config: dict[str, Any]) -> None:
    item.value = "" if value is None else _json_text(value)
    item.rows = spec.hints.get("rows", 4)


def _read_json(data: QueryDict, spec: Spec) -> Any:
    raw = data.get(PREFIX + spec.name, "")
    if not raw.strip():
        return UNSET
    try:
        return json.loads(raw)
    except ValueError as exc:
        if spec.annotation is Any:
            return raw  # a field of any type takes plain text as a string
        raise Unreadable(f"not valid JSON: {exc}") from None


def _columns(spec: Spec) -> dict[str, FieldInfo]:
    """A rows field's columns: the fields of the model its list holds."""
    (record,) = get_args(spec.annotation)
    return dict(record.model_fields)


def _cells(spec: Spec, record: Any) -> list[Cell]:
    values = record if isinstance(record, dict) else {}
    cells = []
    for name, info in _columns(spec).items():
        hints = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        value = values.get(name)
        cells.append(
            Cell(
                name=name,
                title=info.title or name.capitalize(),
                placeholder=str(hints.get("placeholder", "")),
                value="" if value is None else str(value),
            )
        )
    return cells


def _fill_rows(item: FormField, value: Any, spec: Spec, config: dict[str, Any]) -> None:
    records = value if isinstance(value, list) else []
    item.records = [_cells(spec, record) for record in records]
    item.blank = _cells(spec, {})
    if not item.records:
        item.records = [item.blank]  # the columns show from the start; blank rows are dropped


def _read_rows(data: QueryDict, spec: Spec) -> Any:
    # Each column is posted as a list, one value per row, in the order of the rows. Values
    # are kept exactly as typed: a pattern's backslashes are the pattern's.
    if PREFIX + spec.name not in data:
        return UNSET  # the form had no such table
    columns = {name: data.getlist(f"{PREFIX}{spec.name}.{name}") for name in _columns(spec)}
    lengths = {len(values) for values in columns.values()}
    if len(lengths) != 1:
        raise Unreadable("every row needs a value for each column")
    records = [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)]
    return [record for record in records if any(v.strip() for v in record.values())]


KINDS: dict[str, FieldKind] = {
    "text": FieldKind("text", _fill_text, _read_text),
    "code": FieldKind("text", _fill_code, _read_text),
    # Program text (a code node's Python): a monospaced box, whitespace kept as typed.
    "source": FieldKind("source", _fill_text, _read_text),
    "template": FieldKind("template", _fill_text, _read_text),
    "select": FieldKind("select", _fill_select, _read_choice),
    "tristate": FieldKind("select", _fill_tristate, _read_tristate),
    "cache": FieldKind("select", _fill_cache, _read_tristate),
    "checkbox": FieldKind("checkbox", _fill_checkbox, _read_checkbox),
    "number": FieldKind("number", _fill_number, _read_number),
    "lines": FieldKind("lines", _fill_lines, _read_lines),
    "tools": FieldKind("choices", _fill_tools, _read_tools),
    # A saved flow, chosen among those offered (``offer``); its id is what is stored.
    "flow": FieldKind("select", _fill_flow, _read_choice),
    "json": FieldKind("json", _fill_json, _read_json),
    # JSON too; the page adds a table of its fields over the raw text (canvas/schematable.js).
    "schema": FieldKind("schema", _fill_json, _read_json),
    "rows": FieldKind("rows", _fill_rows, _read_rows),
}


def kind_of(annotation: Any, optional: bool, widget: str | None) -> str:
    """The field's widget when its type names one, else the kind its annotation implies.

    >>> kind_of(bool, True, None), kind_of(list[str], False, None), kind_of(dict, False, None)
    ('tristate', 'lines', 'json')
    >>> kind_of(str, True, "template")
    'template'
    """
    if widget is not None:
        return widget
    if get_origin(annotation) is Literal:
        return "select"
    if annotation is bool:
        return "tristate" if optional else "checkbox"
    if annotation in (int, float):
        return "number"
    if annotation is str:
        return "text"
    if get_origin(annotation) is list and get_args(annotation) == (str,):
        return "lines"
    return "json"


@cache
def specs(node_type: NodeType) -> tuple[Spec, ...]:
    """The form's fields for a node type, in its model's order."""
    result = []
    for name, info in node_type.Config.model_fields.items():
        annotation, optional = _unwrap(info.annotation)
        hints = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        widget = hints.get("widget")
        kind = kind_of(annotation, optional, widget if isinstance(widget, str) else None)
        result.append(Spec(node_type, name, info, annotation, optional, hints, kind))
    return tuple(result)


# ---- The form ----------------------------------------------------------------------------


def fields_for(
    node_type: NodeType, config: dict[str, Any], flows: list[tuple[str, str]] | None = None
) -> list[FormField]:
    """The form fields of a node type, filled from ``config`` (defaults where unset).

    ``flows``: the saved flows (id, name) the user may call (``offered_flows``), offered by
    a ``flow`` field and among an agent's tools (as ``flow:ID``)."""
    result = []
    for spec in specs(node_type):
        info = spec.info
        kind = KINDS[spec.kind]
        item = FormField(
            name=spec.name,
            label=info.title or spec.name.replace("_", " ").capitalize(),
            kind=kind.html,
            required=info.is_required(),
            help=info.description or "",
            advanced=spec.name in COMMON or spec.hints.get("advanced") is True,
        )
        default = None if info.is_required() else info.get_default(call_default_factory=True)
        kind.fill(item, config.get(spec.name, default), spec, config)
        offer(item, spec, flows or [])
        item.when, item.off = _when(spec, config)
        result.append(item)
    main = [f for f in result if not f.advanced]
    advanced = [f for f in result if f.advanced]
    for item in main + advanced:
        if item.kind == "template":
            item.variables, problem = template_variables(item.value)
            item.error = item.error or problem
    return main + advanced


def offer(item: FormField, spec: Spec, flows: list[tuple[str, str]]) -> None:
    """Add the saved flows a user may call to a ``flow`` field or an agent's tools, and the
    priced models to a Model field."""
    if spec.name == "model" and spec.kind == "text":
        item.suggestions = known_models()
    if spec.kind == "flow":
        offered = [flow_id for flow_id, _ in flows]
        kept = [c for c in item.choices if c and c not in offered]
        item.choices = ["", *offered, *kept]
        item.labels = {flow_id: f"{name} (#{flow_id})" for flow_id, name in flows}
        item.labels[""] = "Choose a flow"
    elif spec.kind == "tools":
        names = [f"{TOOL_PREFIX}{flow_id}" for flow_id, _ in flows]
        item.choices += [n for n in names if n not in item.choices]
        item.labels = {f"{TOOL_PREFIX}{flow_id}": name for flow_id, name in flows}


MAX_OFFERED_FLOWS = 200


def offered_flows(user) -> list[tuple[str, str]]:
    """The saved flows `user` may run, (id, name), by name: what a form offers to call."""
    rows = editable_flows(user).order_by("name", "pk").values_list("pk", "name")
    return [(str(pk), name) for pk, name in rows[:MAX_OFFERED_FLOWS]]


def _when(spec: Spec, config: dict[str, Any]) -> tuple[tuple[str, str] | None, bool]:
    """The field the hint ``when`` names, with its values; and whether they rule it out now."""
    when = spec.hints.get("when")
    if not isinstance(when, dict) or len(when) != 1:
        return None, False
    ((other, values),) = when.items()
    fields = spec.node_type.Config.model_fields
    if other not in fields:
        return None, False
    current = config.get(other, fields[other].get_default(call_default_factory=True))
    return (other, " ".join(str(v) for v in values)), str(current) not in map(str, values)


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
    for spec in specs(node_type):
        try:
            value = KINDS[spec.kind].read(data, spec)
        except Unreadable as exc:
            errors[spec.name] = str(exc)
            keep.append(spec.name)
            continue
        if value is not UNSET:
            config[spec.name] = value
    return config, errors, keep


def check(
    node_type: NodeType,
    config: dict[str, Any],
    errors: dict[str, str] | None = None,
    services: Services | None = None,
) -> Checked:
    """Validate with the type's model and checks; messages land on their fields.

    ``services``: whose saved flows a ``subflow`` or an agent's ``flow:`` tool may name
    (``webapp.execution.plans.user_services``); by default none."""
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
                # About no field of the form: an unknown key, or a check of the whole model.
                name = ""
                message = message.removeprefix("config: ")
            _add(errors, name, message)
        return Checked(_without_defaults(node_type, config), errors, [], False)
    for name, source in node_type.templates(parsed).items():
        try:
            templating.check(source)
        except templating.TemplateProblem as exc:
            _add(errors, name, str(exc))
    for problem in node_type.problems(parsed, services or default_services()):
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


def _add(errors: dict[str, str], name: str, message: str) -> None:
    errors[name] = f"{errors[name]}; {message}" if errors.get(name) else message
