"""Structured output: a JSON Schema a node asks the model to answer in, and the reply checked.

A node with an ``output_schema`` (an object schema) gets one output port per top-level
property plus ``value``, the whole object. ``schema_problems`` says what is wrong with a
schema before a flow runs; ``Shape`` checks a reply against it and splits it into ports.

>>> schema = {
...     "type": "object",
...     "properties": {
...         "verdict": {"enum": ["PASS", "FAIL"]},
...         "score": {"type": "integer", "minimum": 0, "maximum": 10},
...     },
...     "required": ["verdict"],
... }
>>> schema_problems(schema)
[]
>>> shape = Shape(schema)
>>> sorted(shape.ports)
['score', 'value', 'verdict']
>>> shape.outputs(shape.parse('{"verdict": "PASS", "score": 7}'))
{'value': {'verdict': 'PASS', 'score': 7}, 'verdict': 'PASS', 'score': 7}

A property the reply leaves out goes out as null, so whatever reads its port still fires:

>>> shape.outputs(shape.parse('{"verdict": "FAIL"}'))["score"] is None
True
>>> shape.parse('{"verdict": "MAYBE", "score": 11}')  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
graphs.structured.ReplyMismatch: at verdict: "MAYBE" is not one of "PASS" or "FAIL"; at score: ...
>>> schema_problems({"type": "object", "properties": {"value": {"type": "string"}}})
["property 'value' is taken by the port holding the whole object; rename it"]

``example`` builds a value that fits a schema, deterministically (the offline model answers
with it); ``pick`` chooses among an ``enum``'s options:

>>> example(schema)
{'verdict': 'PASS', 'score': 0}
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from graphs.document import IDENTIFIER_RULE, is_identifier

# Ports every node may have besides its properties: the whole object, and on_error's port.
RESERVED = {"value": "the port holding the whole object", "error": "the error port"}
MAX_REPORTED = 3  # mismatches named in one message; the rest are counted


class ReplyMismatch(ValueError):
    """A reply that is not JSON, or does not fit the schema; the message says where."""


def schema_problems(schema: Mapping[str, Any]) -> list[str]:
    """What keeps ``schema`` from being an output schema: each a sentence, [] when fine.

    Regexes in ``pattern`` must be linear-time ones (no lookaround or backreferences), and
    ``$ref`` must point inside the schema: nothing is ever fetched.
    """
    import jsonschema_rs  # here, as in _validator: only flows with schemas need it

    try:
        jsonschema_rs.meta.validate(dict(schema))
        _validator(schema)
    except (jsonschema_rs.ValidationError, jsonschema_rs.ReferencingError) as exc:
        return [f"not a valid JSON Schema: {_first_line(exc)}"]
    except ValueError as exc:  # an unknown $schema dialect
        return [f"not a valid JSON Schema: {_first_line(exc)}"]
    if schema.get("type") != "object":
        return ['must be an object schema ("type": "object") whose properties become ports']
    properties = schema.get("properties")
    if not isinstance(properties, dict) or not properties:
        return ["needs at least one property under properties; each becomes an output port"]
    problems = [
        f"{where} needs a type (or enum, const, anyOf): the API constrains replies field by field"
        for where in _untyped(schema, "")
    ]
    for name in properties:
        if not is_identifier(name):
            problems.append(f"property {name!r} cannot name a port: it must be {IDENTIFIER_RULE}")
        elif name in RESERVED:
            problems.append(f"property {name!r} is taken by {RESERVED[name]}; rename it")
    return problems


def ports(schema: Mapping[str, Any]) -> frozenset[str]:
    """The output ports of a node answering in ``schema``: ``value`` and each property."""
    properties = schema.get("properties")
    return frozenset({"value", *(properties if isinstance(properties, dict) else {})})


class Shape:
    """A checked output schema, compiled once: parses replies and splits them into ports."""

    def __init__(self, schema: Mapping[str, Any]):
        self.schema = dict(schema)
        self.ports = ports(self.schema)
        self.properties = [name for name in self.schema["properties"]]
        self._validator = _validator(self.schema)

    def parse(self, text: str) -> Any:
        """The reply's JSON value, or ``ReplyMismatch`` saying why it does not fit.

        Linear in the reply, which ``max_tokens`` bounds: the validator is compiled Rust and
        its regexes cannot backtrack, so this may run on the event loop.
        """
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ReplyMismatch(f"the reply is not JSON ({exc})") from None
        errors = list(_first(self._validator.iter_errors(value), MAX_REPORTED + 1))
        if errors:
            described = [_describe(error) for error in errors[:MAX_REPORTED]]
            if len(errors) > MAX_REPORTED:
                described.append("and more")
            raise ReplyMismatch("; ".join(described))
        return value

    def outputs(self, value: Any) -> dict[str, Any]:
        """``value`` on port ``value``, and each top-level property on its own port."""
        fields = value if isinstance(value, dict) else {}
        return {"value": value, **{name: fields.get(name) for name in self.properties}}


def example(schema: Any, pick: Callable[[list[Any]], Any] | None = None) -> Any:
    """A value fitting ``schema`` (for the schemas people write; not every schema).

    Strings say they come from the offline model.

    >>> example({"type": "array", "items": {"type": "string"}, "minItems": 2})
    ['[offline model]', '[offline model]']
    """
    choose = pick or (lambda options: options[0])
    if not isinstance(schema, dict):
        return None
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return choose(list(schema["enum"]))
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return example(schema[key][0], pick)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties") or {}
        return {name: example(sub, pick) for name, sub in properties.items()}
    if kind == "array":
        count = max(int(schema.get("minItems", 1)), 0)
        count = min(count, int(schema.get("maxItems", count)))
        return [example(schema.get("items", {"type": "string"}), pick) for _ in range(count)]
    if kind in ("integer", "number"):
        return _number(schema, kind)
    if kind == "boolean":
        return True
    if kind == "string":
        return _string(schema)
    return None


_TYPED_BY = ("type", "enum", "const", "anyOf", "oneOf", "allOf", "$ref")


def _untyped(schema: Any, path: str) -> Iterator[str]:
    """Where a (sub)schema says nothing of its type, which the API's structured outputs
    refuse (``anthropic.transform_schema`` raises on it): reported before a run, not in it.
    ``path`` reads like ``a.b[]`` (``[]``: the items of a list)."""
    if not isinstance(schema, dict):
        return
    if not any(key in schema for key in _TYPED_BY):
        yield f"property {path!r}" if path else "the schema"
    for name, sub in (schema.get("properties") or {}).items():
        yield from _untyped(sub, f"{path}.{name}" if path else name)
    if isinstance(schema.get("items"), dict):
        yield from _untyped(schema["items"], f"{path}[]")
    for key in ("anyOf", "oneOf", "allOf"):
        for number, sub in enumerate(schema.get(key) or [], start=1):
            yield from _untyped(sub, f"{path} ({key} {number})")
    for name, sub in (schema.get("$defs") or {}).items():
        yield from _untyped(sub, f"$defs.{name}")


def _validator(schema: Mapping[str, Any]) -> Any:
    # Imported here: every model node's module imports this one, few flows hold a schema.
    import jsonschema_rs

    # RegexOptions: the linear-time `regex` engine (a user's pattern cannot backtrack);
    # offline: a $ref to anywhere outside the schema fails instead of being fetched.
    return jsonschema_rs.validator_for(
        dict(schema), pattern_options=jsonschema_rs.RegexOptions(), offline=True
    )


def _first(errors: Iterator[Any], limit: int) -> Iterator[Any]:
    for count, error in enumerate(errors):
        if count >= limit:
            return
        yield error


def _describe(error: Any) -> str:
    path = "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.instance_path
    ).lstrip(".")
    return f"at {path}: {error.message}" if path else error.message


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0]


def _number(schema: dict[str, Any], kind: str) -> int | float:
    value: int | float = 0
    if "minimum" in schema:
        value = schema["minimum"]
    elif "exclusiveMinimum" in schema:
        value = schema["exclusiveMinimum"] + 1
    elif "maximum" in schema and schema["maximum"] < 0:
        value = schema["maximum"]
    elif "exclusiveMaximum" in schema and schema["exclusiveMaximum"] <= 0:
        value = schema["exclusiveMaximum"] - 1
    return int(value) if kind == "integer" else value


_FORMATS = {
    "date": "2026-01-01",
    "date-time": "2026-01-01T00:00:00Z",
    "time": "00:00:00Z",
    "email": "offline@example.com",
    "uri": "https://example.com/offline",
    "uuid": "00000000-0000-0000-0000-000000000000",
}


def _string(schema: dict[str, Any]) -> str:
    if schema.get("format") in _FORMATS:
        return _FORMATS[schema["format"]]
    text = "[offline model]"
    text = text.ljust(int(schema.get("minLength", 0)), ".")
    return text[: int(schema.get("maxLength", len(text)))]
