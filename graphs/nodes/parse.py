"""``parse``: reads a JSON value out of its ``text`` (a model's reply, usually) and emits it
on ``value``, so that a plan can fan out in a ``map`` or a verdict steer a router.

The readers live in ``graphs.parsing``; this module is the node around them.

>>> import asyncio
>>> from graphs.nodes import NODE_TYPES
>>> parse = NODE_TYPES["parse"]
>>> config = parse.Config.model_validate({"mode": "lines"})
>>> asyncio.run(parse.run(None, config, {"text": "Plan:\\n1. research\\n2. write"}))
{'value': ['research', 'write']}
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, Literal

from pydantic import Field, field_validator

from graphs import parsing, regex
from graphs.errors import NodeError
from graphs.nodes.base import CommonConfig, FieldProblem, NodeContext, NodeType, Services


class ParseConfig(CommonConfig):
    mode: Literal["json", "xml", "regex", "lines"] = Field(
        default="json",
        description="json: the first JSON value, in a ``` fence or among prose. "
        "xml: the content of the tags below. regex: the pattern's named groups. "
        "lines: the items of a bulleted or numbered list (else each line).",
    )
    tags: list[str] = Field(
        default_factory=list,
        max_length=20,
        description="xml mode: the tags to read, one per line. A tag holding only tags becomes "
        "an object of them, any other its text. One tag gives its value; several, an object "
        "by tag.",
    )
    pattern: str | None = Field(
        default=None,
        max_length=1000,
        description="regex mode: each match becomes an object of its named groups "
        "(?P<name>...), or its text when it names none.",
        json_schema_extra={"widget": "code"},
    )
    matches: Literal["first", "all"] = Field(
        default="first",
        description="xml and regex modes: the first match, or a list of all of them.",
    )

    @field_validator("tags")
    @classmethod
    def _tag_names(cls, tags: list[str]) -> list[str]:
        for tag in tags:
            if not re.match(parsing.XML_NAME, tag) or len(tag) > 100:
                raise ValueError(f"tag {tag!r} must be a name such as task (no < > or spaces)")
        if len(set(tags)) != len(tags):
            raise ValueError("tags must be unique")
        return tags

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        if pattern:
            try:
                regex.compile(pattern)
            except regex.RegexProblem as exc:
                raise ValueError(str(exc)) from None
        return pattern


class ParseNode(NodeType):
    name = "parse"
    label = "Parse"
    description = "Reads JSON, tags, regex groups or a list out of its `text`; emits `value`."
    category = "text"
    Config = ParseConfig
    default_config = {"mode": "json"}

    def input_ports(self, config: ParseConfig) -> frozenset[str]:
        return frozenset({"text"})

    def output_ports(self, config: ParseConfig) -> frozenset[str]:
        return frozenset({"value"})

    def problems(self, config: ParseConfig, services: Services | None) -> list[FieldProblem]:
        if config.mode == "xml" and not config.tags:
            return [FieldProblem("tags", "xml mode needs at least one tag to read")]
        if config.mode == "regex" and not config.pattern:
            return [FieldProblem("pattern", "regex mode needs a pattern")]
        return []

    def cacheable(self, config: ParseConfig, services: Services) -> bool:
        # Deterministic: the same text always reads the same.
        return True

    async def run(self, ctx: NodeContext, config: ParseConfig, inputs: dict) -> dict:
        text = inputs["text"]
        if not isinstance(text, str):
            if config.mode == "json":
                return {"value": text}  # already a JSON value
            raise NodeError(f"port 'text' needs text, got {type(text).__name__}")
        try:
            # Reading is bounded (parsing.MAX_CHARS, MAX_MATCHES) but not small: the worst
            # megabyte takes some tenths of a second, the worst 20,000 characters tens of
            # milliseconds (bench/parse_worst.py). A thread keeps that off the event loop
            # every run shares; the hop costs far less than the model call before it.
            value = await asyncio.to_thread(read, config, text)
        except parsing.ParseProblem as exc:
            raise NodeError(str(exc)) from None
        return {"value": value}


def read(config: ParseConfig, text: str) -> Any:
    """What ``config`` reads out of ``text``, or ParseProblem saying what it expected."""
    every = config.matches == "all"
    if config.mode == "json":
        return parsing.first_json(text)
    if config.mode == "xml":
        return parsing.xml_values(text, config.tags, every=every)
    if config.mode == "regex":
        assert config.pattern is not None  # problems() refuses regex mode without one
        return parsing.regex_values(config.pattern, text, every=every)
    return parsing.list_items(text)
