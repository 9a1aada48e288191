"""Conditions users write: one Jinja2 expression, true or false over a node's input values.

An expression is what goes between ``{{`` and ``}}`` in a template, evaluated in the same
immutable sandbox (``graphs.templating``): the same filters and tests, no private
attributes, strict undefined variables. Its free names are the ports of the node that
holds it, as a template's variables are. Values are JSON, so an object's fields read as
attributes or items, and the result counts as Python's truth (``""``, ``0``, ``[]`` and
``null`` are false).

>>> holds('verdict == "PASS"', {"verdict": "PASS"})
True
>>> holds("value.score >= 7", {"value": {"score": 6}})
False
>>> holds('"code" in labels', {"labels": ["code", "docs"]})
True
>>> sorted(variables("score >= 7 and 'x' in labels | join"))
['labels', 'score']

Where it runs (``holds_async``): as a template does. It is checked as the template
``{{ expression }}``, so it runs inline on the caller's loop only when the template's
syntax-tree analysis proves the work small for the given values, and in
``graphs.sandbox``'s worker processes, under their time and memory limits, otherwise.

>>> check("score >=")
Traceback (most recent call last):
...
graphs.expressions.ExpressionProblem: syntax error: unexpected end of the expression
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import TemplateSyntaxError
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.parser import Parser

from graphs import templating
from graphs.limits import SandboxSettings

# The one sandboxed environment (its operator limits, no globals) serves both.
from graphs.templating import _env as _ENV

MAX_EXPRESSION_CHARS = 2_000


class ExpressionProblem(ValueError):
    """The expression cannot be used or failed; the message says why, without a traceback."""


def check(source: str) -> None:
    """Refuse an expression that does not parse as exactly one expression, or that reaches
    for what the sandbox forbids.

    >>> check("a }}{% for x in y %}")
    Traceback (most recent call last):
    ...
    graphs.expressions.ExpressionProblem: syntax error: unexpected '}}' after the expression
    """
    problem = _problem(source)
    if problem is not None:
        raise ExpressionProblem(problem)


@lru_cache(maxsize=4096)
def _problem(source: str) -> str | None:
    if not source.strip():
        return "is empty"
    if len(source) > MAX_EXPRESSION_CHARS:
        return f"is {len(source):,} characters; the limit is {MAX_EXPRESSION_CHARS:,}"
    try:
        # Lexed as if inside {{ }}: a "}}" ends the expression, and anything after it is
        # refused, so the template below holds this one expression and nothing else.
        parser = Parser(_ENV, source, state="variable")
        parser.parse_expression()
        if not parser.stream.eos:
            return f"syntax error: unexpected {parser.stream.current.value!r} after the expression"
    except TemplateSyntaxError as exc:
        message = (exc.message or "").replace("'end of template'", "end of the expression")
        return f"syntax error: {message}"
    except RecursionError:
        return "is nested too deeply"
    try:
        templating.check(_as_template(source))
    except templating.TemplateProblem as exc:
        return str(exc)
    return None


def _as_template(source: str) -> str:
    # Only for an expression check() accepts: then this template holds it and nothing else.
    return "{{ " + source + " }}"


def variables(source: str) -> frozenset[str]:
    """The names an expression reads: the ports of the node that holds it."""
    check(source)
    return templating.variables(_as_template(source))


@lru_cache(maxsize=1024)
def _compiled(source: str) -> Any:
    return _ENV.compile_expression(source, undefined_to_none=False)


def holds(source: str, values: Mapping[str, Any]) -> bool:
    """Evaluate here and now, whatever it costs; failures become an ExpressionProblem.

    For expressions users wrote, use ``holds_async``: this is its inline path, and what
    the sandbox's workers run.

    >>> holds("score > 3", {})
    Traceback (most recent call last):
    ...
    graphs.expressions.ExpressionProblem: 'score' is undefined
    """
    check(source)
    try:
        # bool() inside: an undefined result raises only when its truth is asked.
        return bool(_compiled(source)(**values))
    except UndefinedError as exc:
        raise ExpressionProblem(str(exc.message)) from None
    except SecurityError as exc:
        raise ExpressionProblem(f"sandbox refused the expression: {exc}") from None
    except RecursionError:
        raise ExpressionProblem("the expression is nested or recurses too deeply") from None
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise ExpressionProblem(str(exc)) from None


def runs_inline(source: str, values: Mapping[str, Any]) -> bool:
    """Whether evaluating ``source`` over ``values`` provably takes little work.

    >>> runs_inline("score >= 7", {"score": 3}), runs_inline("text.split()", {"text": "a b"})
    (True, False)
    """
    check(source)
    return templating.runs_inline(_as_template(source), values)


async def holds_async(
    source: str,
    values: Mapping[str, Any],
    settings: SandboxSettings | None = None,
) -> bool:
    """Inline when the work is provably small, else in the sandbox (module doc)."""
    if runs_inline(source, values):
        return holds(source, values)
    # The worker pool (and asyncio) only for what cannot run inline: a flow that is
    # only checked, or whose renders stay inline, never loads it.
    from graphs import sandbox

    # Only what it reads crosses into the worker: a router's other ports may hold megabytes.
    read = {name: values[name] for name in variables(source) if name in values}
    args = {"source": source, "values": read}
    try:
        result = await sandbox.run("expression", args, settings)
    except sandbox.SandboxJobFailed as exc:
        if exc.kind == "ExpressionProblem":
            raise ExpressionProblem(str(exc)) from None
        raise ExpressionProblem(f"{exc.kind}: {exc}") from None
    except sandbox.SandboxError as exc:
        raise ExpressionProblem(f"the expression {exc}") from None
    if not isinstance(result, bool):
        raise ExpressionProblem("the sandbox returned no truth value for the expression")
    return result
