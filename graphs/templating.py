"""Prompt templates: Jinja2 in an immutable sandbox with strict undefined variables.

The variables of a template are the target ports of the node that holds it, so
``variables("Hi {{ name }}")`` is how the engine learns which ports a node has.

>>> render("Hello {{ who }}!", {"who": "world"})
'Hello world!'
>>> sorted(variables("{{ a }} and {{ b | upper }}"))
['a', 'b']
"""

from __future__ import annotations

import operator
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_TEMPLATE_CHARS = 1_000_000
MAX_RENDERED_CHARS = 5_000_000


class TemplateProblem(ValueError):
    """The template cannot be used; the message says why, without a traceback."""


class _Environment(ImmutableSandboxedEnvironment):
    # `'a' * 10**9` would otherwise allocate gigabytes inside the sandbox.
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "**":
            if isinstance(right, int | float) and abs(right) > 1000:
                raise SecurityError("exponent too large in template")
            return operator.pow(left, right)
        if isinstance(left, str | list) or isinstance(right, str | list):
            count = right if isinstance(left, str | list) else left
            seq = left if isinstance(left, str | list) else right
            if isinstance(count, int) and len(seq) * count > MAX_RENDERED_CHARS:
                raise SecurityError("template repeats a value past the size limit")
        return operator.mul(left, right)


_env = _Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
# The default globals (range, lipsum, cycler, joiner, namespace, dict) are escape hatches or
# CPU sinks; prompts only need their variables and filters.
_env.globals.clear()


@lru_cache(maxsize=1024)
def _parse(source: str) -> nodes.Template:
    return _env.parse(source)


@lru_cache(maxsize=1024)
def _compile(source: str) -> Any:
    return _env.from_string(source)


def check(source: str) -> None:
    """Refuse a template that cannot parse or reaches for private attributes.

    >>> check("{{ ''.__class__ }}")
    Traceback (most recent call last):
    ...
    graphs.templating.TemplateProblem: uses '__class__', which the sandbox forbids
    """
    if len(source) > MAX_TEMPLATE_CHARS:
        raise TemplateProblem(f"is {len(source):,} characters; the limit is {MAX_TEMPLATE_CHARS:,}")
    problem = _problem(source)
    if problem is not None:
        raise TemplateProblem(problem)


@lru_cache(maxsize=4096)
def _problem(source: str) -> str | None:
    # Cached: a flow repeats the same prompt across many nodes, and every save, port
    # lookup and run checks it again.
    try:
        tree = _parse(source)
    except TemplateSyntaxError as exc:
        return f"template syntax error on line {exc.lineno}: {exc.message}"
    forbidden = sorted(_private_names(tree), key=source.find)
    if forbidden:
        return f"uses {forbidden[0]!r}, which the sandbox forbids"
    return None


def _private_names(tree: nodes.Template) -> set[str]:
    """Private names reached for by attribute, item, or a filter argument like attr('_x')."""
    names: set[str] = set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter, nodes.Test)):
        if isinstance(node, nodes.Getattr):
            candidates = [node.attr]
        elif isinstance(node, nodes.Getitem):
            candidates = [_const(node.arg)]
        else:
            candidates = [_const(arg) for arg in node.args]
            candidates += [_const(kw.value) for kw in node.kwargs]
        names.update(c for c in candidates if isinstance(c, str) and c.startswith("_"))
    return names


def _const(node: nodes.Node) -> Any:
    return node.value if isinstance(node, nodes.Const) else None


@lru_cache(maxsize=4096)
def variables(source: str) -> frozenset[str]:
    """The undeclared variable names of a template: the ports it reads."""
    from jinja2 import meta

    return frozenset(meta.find_undeclared_variables(_parse(source)))


def render(source: str, values: dict[str, Any]) -> str:
    """Render in the sandbox; any failure becomes a TemplateProblem with a plain message."""
    check(source)
    try:
        text = _compile(source).render(values)
    except UndefinedError as exc:
        raise TemplateProblem(f"template error: {exc.message}") from None
    except SecurityError as exc:
        raise TemplateProblem(f"sandbox refused the template: {exc}") from None
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise TemplateProblem(f"template error: {exc}") from None
    if len(text) > MAX_RENDERED_CHARS:
        raise TemplateProblem(f"rendered text exceeds {MAX_RENDERED_CHARS:,} characters")
    return text
