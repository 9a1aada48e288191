"""Prompt templates: Jinja2 in an immutable sandbox with strict undefined variables.

The variables of a template are the target ports of the node that holds it, so
``variables("Hi {{ name }}")`` is how the engine learns which ports a node has.

>>> render("Hello {{ who }}!", {"who": "world"})
'Hello world!'
>>> sorted(variables("{{ a }} and {{ b | upper }}"))
['a', 'b']

Where a template renders (``render_async``, which nodes use). Jinja's sandbox stops a
template from reaching private attributes, not from running long or allocating much: a
nested ``{% for %}`` over a long input, or ``center(400000000)``, runs for seconds or builds
hundreds of megabytes, and on the event loop nothing can interrupt it. Such templates render
in ``graphs.sandbox``'s worker processes, under a time budget and a memory limit. A process
round trip costs far more than most renders, though, and most prompts only put their
inputs in place. So a template renders inline when this module can prove, from its syntax
tree, that the work is small: every piece of the tree is evaluated at most once (no loops,
macros, calls, assignments or includes) and each yields a value no larger than a fixed
multiple of its operands plus a constant (only filters from a list whose output is so
bounded, each argument a constant so the bound is known). That makes the total work a
linear form in the sizes of the input values, worked out once per template; it is
evaluated on the actual inputs before each render, and above ``INLINE_WORK_LIMIT`` the
render goes to the sandbox too. Anything the analysis does not know goes to the sandbox,
so it errs only towards the slower, safe path.

>>> runs_inline("Dear {{ name | title }}, {{ body }}", {"name": "ada", "body": "hi"})
True
>>> runs_inline("{% for c in text %}{{ c }}{% endfor %}", {"text": "hi"})
False
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from graphs.limits import SandboxSettings

MAX_TEMPLATE_CHARS = 1_000_000
MAX_RENDERED_CHARS = 5_000_000
# Work units are roughly characters handled; a million of them takes milliseconds.
INLINE_WORK_LIMIT = 1_000_000


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
    except RecursionError:
        # Jinja parses by recursive descent: 5,000 nested parentheses overflow the stack.
        return "template is nested too deeply"
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
        elif isinstance(node, nodes.Filter | nodes.Test):
            candidates = [_const(arg) for arg in node.args]
            candidates += [_const(kw.value) for kw in node.kwargs]
        else:
            continue
        names.update(c for c in candidates if isinstance(c, str) and c.startswith("_"))
    return names


def _const(node: nodes.Node) -> Any:
    return node.value if isinstance(node, nodes.Const) else None


@lru_cache(maxsize=4096)
def variables(source: str) -> frozenset[str]:
    """The undeclared variable names of a template: the ports it reads."""
    from jinja2 import meta

    return frozenset(meta.find_undeclared_variables(_parse(source)))


def render(source: str, values: Mapping[str, Any]) -> str:
    """Render here and now, whatever it costs; failures become a TemplateProblem.

    For templates users wrote, use ``render_async``: this is its inline path, and what
    the sandbox's workers run.
    """
    check(source)
    try:
        text = _compile(source).render(values)
    except UndefinedError as exc:
        raise TemplateProblem(f"template error: {exc.message}") from None
    except SecurityError as exc:
        raise TemplateProblem(f"sandbox refused the template: {exc}") from None
    except RecursionError:
        raise TemplateProblem("template is nested or recurses too deeply") from None
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise TemplateProblem(f"template error: {exc}") from None
    if len(text) > MAX_RENDERED_CHARS:
        raise TemplateProblem(f"rendered text exceeds {MAX_RENDERED_CHARS:,} characters")
    return text


async def render_async(
    source: str,
    values: Mapping[str, Any],
    settings: SandboxSettings | None = None,
) -> str:
    """Render inline when the work is provably small, else in the sandbox (module doc).

    Failures, running out of time or memory included, become a TemplateProblem.
    """
    check(source)
    if runs_inline(source, values):
        return render(source, values)
    # The worker pool (and asyncio) only for what cannot run inline: a flow that is
    # only checked, or whose renders stay inline, never loads it.
    from graphs import sandbox

    args = {"source": source, "values": dict(values)}
    try:
        text = await sandbox.run("template", args, settings)
    except sandbox.SandboxJobFailed as exc:
        if exc.kind == "TemplateProblem":
            raise TemplateProblem(str(exc)) from None
        raise TemplateProblem(f"template error: {exc.kind}: {exc}") from None
    except sandbox.SandboxError as exc:
        raise TemplateProblem(f"template {exc}") from None
    if not isinstance(text, str):
        raise TemplateProblem("the sandbox returned no text for the template")
    return text


# The inline path --------------------------------------------------------------------


def runs_inline(source: str, values: Mapping[str, Any]) -> bool:
    """Whether rendering ``source`` over ``values`` provably takes little work (module doc)."""
    work = _work(source)
    if work is None:
        return False
    total, coefficients = work
    for name, coefficient in coefficients:
        if total > INLINE_WORK_LIMIT:
            return False
        if name in values:  # else the render stops at once: the variable is undefined
            room = (INLINE_WORK_LIMIT - total) // coefficient + 1
            total += coefficient * _value_size(values[name], room)
    return total <= INLINE_WORK_LIMIT


class _Linear:
    """A bound ``const + sum(coefficient * size of variable)`` on a value or on work done."""

    __slots__ = ("coefficients", "const")

    def __init__(self, const: int = 0, coefficients: Mapping[str, int] | None = None):
        self.const = const
        self.coefficients: dict[str, int] = dict(coefficients or {})

    def __add__(self, other: _Linear) -> _Linear:
        merged = dict(self.coefficients)
        for name, coefficient in other.coefficients.items():
            merged[name] = merged.get(name, 0) + coefficient
        return _Linear(self.const + other.const, merged)

    def times(self, factor: int) -> _Linear:
        return _Linear(self.const * factor, {n: c * factor for n, c in self.coefficients.items()})

    def plus(self, const: int) -> _Linear:
        return _Linear(self.const + const, self.coefficients)


class _Unbounded(Exception):
    """The analysis cannot bound this piece of the template."""


# Sizes, in characters, of what a piece yields when it is not one of its operands.
_BOOL = 5
_NUMBER = 5_000  # an int is at most 4,300 digits (Python's str conversion limit)
_FLOAT = 32
# A method reached by attribute or item prints as "<built-in method ... at 0x...>".
_REPR = 100
# Printed inside a list or dict, a string is its repr: up to 10 characters each.
_IN_CONTAINER = 10

# Jinja's tests are predicates over their operands (divisibleby, in, sameas, ...): each
# yields a bool in time linear in what it is given.
_TESTS = frozenset(_env.tests)


def _params(names: tuple[str, ...], args: list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    if len(args) > len(names) or any(key not in names for key in kwargs):
        raise _Unbounded
    return {**dict(zip(names, args, strict=False)), **kwargs}


def _text_len(value: Any, default: int = 0) -> int:
    return default if value is None else len(str(value))


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Unbounded
    return value


_Rule = Callable[[_Linear, list[Any], dict[str, Any]], tuple[_Linear, _Linear]]


def _bounded(factor: int, const: int = 0, extra: int = 0, names: tuple[str, ...] = ()) -> _Rule:
    """A filter whose output is at most ``factor * input + const``.

    ``extra`` times the input is work done beyond the output, such as a list of parts.
    """

    def rule(base: _Linear, args: list[Any], kwargs: dict[str, Any]) -> tuple[_Linear, _Linear]:
        _params(names, args, kwargs)
        return base.times(factor).plus(const), base.times(extra)

    return rule


def _join(base: _Linear, args: list[Any], kwargs: dict[str, Any]) -> tuple[_Linear, _Linear]:
    separator = _text_len(_params(("d", "attribute"), args, kwargs).get("d"))
    # str.join lists its items first: a string's characters become objects of their own.
    return base.times(1 + separator), base.times(32)


def _replace(base: _Linear, args: list[Any], kwargs: dict[str, Any]) -> tuple[_Linear, _Linear]:
    new = _text_len(_params(("old", "new", "count"), args, kwargs).get("new"))
    # Each occurrence, at most one per character (`old` empty), becomes `new`.
    return base.times(1 + new).plus(new), _Linear()


def _truncate(base: _Linear, args: list[Any], kwargs: dict[str, Any]) -> tuple[_Linear, _Linear]:
    end = _params(("length", "killwords", "end", "leeway"), args, kwargs).get("end", "...")
    return base.plus(_text_len(end)), _Linear()


def _center(base: _Linear, args: list[Any], kwargs: dict[str, Any]) -> tuple[_Linear, _Linear]:
    width = _positive_int(_params(("width",), args, kwargs).get("width", 80))
    return base.plus(width), _Linear()


def _indent(base: _Linear, args: list[Any], kwargs: dict[str, Any]) -> tuple[_Linear, _Linear]:
    width = _params(("width", "first", "blank"), args, kwargs).get("width", 4)
    step = len(width) if isinstance(width, str) else _positive_int(width)
    # Every line, at most one per character, gets the indent; the lines are listed first.
    return base.times(1 + step).plus(step), base.times(64)


def _tojson(base: _Linear, args: list[Any], kwargs: dict[str, Any]) -> tuple[_Linear, _Linear]:
    if _params(("indent",), args, kwargs).get("indent") is not None:
        raise _Unbounded  # each level of nesting repeats the indent
    # "\ud83d\ude00": twelve characters for one.
    return base.times(12).plus(2), _Linear()


_FILTERS: dict[str, _Rule] = {
    "abs": _bounded(1, 1),
    # Case mappings can lengthen text: "ß".upper() is "SS", some take three characters.
    "capitalize": _bounded(3),
    "center": _center,
    "count": _bounded(0, _NUMBER),
    "e": _bounded(6),  # '"' becomes "&#34;"
    "escape": _bounded(6),
    "first": _bounded(1),
    "float": _bounded(0, _FLOAT, names=("default",)),
    "forceescape": _bounded(6),
    "indent": _indent,
    "int": _bounded(0, _NUMBER, names=("default", "base")),
    "join": _join,
    "last": _bounded(1),
    "length": _bounded(0, _NUMBER),
    "lower": _bounded(3),
    "replace": _replace,
    "reverse": _bounded(1, _REPR),
    "round": _bounded(1, _FLOAT, names=("precision", "method")),
    "safe": _bounded(1),
    "string": _bounded(1),
    # title splits the text into words first, a list as long as the text.
    "title": _bounded(3, extra=64),
    "tojson": _tojson,
    "trim": _bounded(1, names=("chars",)),
    "truncate": _truncate,
    "upper": _bounded(3),
}


class _Analysis:
    """Walks a template, bounding each piece's size; ``work`` sums them all."""

    def __init__(self) -> None:
        self.work = _Linear()

    def statements(self, body: Sequence[nodes.Node]) -> None:
        for node in body:
            if isinstance(node, nodes.Output):
                for child in node.nodes:
                    self.expr(child)
            elif isinstance(node, nodes.If):
                self.expr(node.test)
                self.statements(node.body)
                self.statements(node.elif_)
                self.statements(node.else_)
            else:
                raise _Unbounded

    def expr(self, node: nodes.Node) -> _Linear:
        size = self.size(node)
        self.work = self.work + size
        return size

    def size(self, node: nodes.Node) -> _Linear:
        if isinstance(node, nodes.TemplateData):
            return _Linear(len(node.data))
        if isinstance(node, nodes.Const):
            return _Linear(_const_size(node.value))
        if isinstance(node, nodes.Name):
            if node.ctx != "load":
                raise _Unbounded
            return _Linear(0, {node.name: 1})
        if isinstance(node, nodes.Getattr):
            return self.expr(node.node).plus(_REPR)
        if isinstance(node, nodes.Getitem):
            return self.getitem(node)
        if isinstance(node, nodes.Filter):
            return self.filter(node)
        if isinstance(node, nodes.Test):
            if node.name not in _TESTS or node.dyn_args or node.dyn_kwargs:
                raise _Unbounded
            self.expr(node.node)
            for arg in [*node.args, *(kw.value for kw in node.kwargs)]:
                self.expr(arg)
            return _Linear(_BOOL)
        if isinstance(node, nodes.Compare):
            self.expr(node.expr)
            for operand in node.ops:
                self.expr(operand.expr)
            return _Linear(_BOOL)
        if isinstance(node, nodes.Not):
            self.expr(node.node)
            return _Linear(_BOOL)
        if isinstance(node, nodes.Neg | nodes.Pos):
            return self.expr(node.node).plus(1)
        if isinstance(node, nodes.And | nodes.Or):
            return self.expr(node.left) + self.expr(node.right)
        if isinstance(node, nodes.Add | nodes.Sub | nodes.Div | nodes.FloorDiv):
            return (self.expr(node.left) + self.expr(node.right)).plus(_FLOAT)
        if isinstance(node, nodes.Mul):
            return self.multiply(node)
        if isinstance(node, nodes.Concat):
            total = _Linear()
            for child in node.nodes:
                total = total + self.expr(child)
            return total
        if isinstance(node, nodes.CondExpr):
            self.expr(node.test)
            other = self.expr(node.expr2) if node.expr2 is not None else _Linear()
            return self.expr(node.expr1) + other
        if isinstance(node, nodes.List | nodes.Tuple):
            total = _Linear(2)
            for item in node.items:
                total = total + self.expr(item).plus(2)
            return total
        if isinstance(node, nodes.Dict):
            total = _Linear(2)
            for pair in node.items:
                total = total + (self.expr(pair.key) + self.expr(pair.value)).plus(4)
            return total
        raise _Unbounded

    def getitem(self, node: nodes.Getitem) -> _Linear:
        base = self.expr(node.node)
        if isinstance(node.arg, nodes.Slice):
            for part in (node.arg.start, node.arg.stop, node.arg.step):
                if part is not None:
                    self.expr(part)
        else:
            self.expr(node.arg)
        # An item, a slice, or (the sandbox falls back to attributes) a method.
        return base.plus(_REPR)

    def multiply(self, node: nodes.Mul) -> _Linear:
        # Only by a constant: x * n repeats x n times, which is linear when n is known.
        for count, other in ((node.right, node.left), (node.left, node.right)):
            value = _const(count)
            if isinstance(value, int | float) and not isinstance(value, bool):
                factor = int(abs(value)) + 1
                if factor > INLINE_WORK_LIMIT:
                    raise _Unbounded
                return self.expr(other).times(factor).plus(_FLOAT)
        raise _Unbounded

    def filter(self, node: nodes.Filter) -> _Linear:
        if node.node is None or node.dyn_args or node.dyn_kwargs:
            raise _Unbounded
        if node.name in ("default", "d"):
            # The value or the fallback: any expression the analysis bounds will do.
            size = self.expr(node.node)
            for arg in [*node.args, *(kw.value for kw in node.kwargs)]:
                size = size + self.expr(arg)
            return size
        rule = _FILTERS.get(node.name)
        if rule is None:
            raise _Unbounded
        base = self.expr(node.node)
        args = [_known(arg) for arg in node.args]
        kwargs = {str(kw.key): _known(kw.value) for kw in node.kwargs}
        size, extra = rule(base, args, kwargs)
        self.work = self.work + extra
        return size


def _known(node: nodes.Node) -> Any:
    """A filter argument's value; only constants keep the bound computable."""
    if not isinstance(node, nodes.Const):
        raise _Unbounded
    return node.value


def _const_size(value: Any) -> int:
    try:
        return len(value) if isinstance(value, str) else len(repr(value))
    except ValueError:  # an int too long to print
        return _NUMBER


@lru_cache(maxsize=1024)
def _work(source: str) -> tuple[int, tuple[tuple[str, int], ...]] | None:
    """Rendering's work bound, as (constant, (variable, coefficient)...), or None if unknown."""
    analysis = _Analysis()
    try:
        analysis.statements(_parse(source).body)
    except (_Unbounded, RecursionError):
        return None
    work = analysis.work
    return work.const, tuple((n, c) for n, c in sorted(work.coefficients.items()) if c)


def _value_size(value: Any, limit: int) -> int:
    """At most how many characters ``value`` prints as; stops counting past ``limit``."""
    if isinstance(value, str):
        return len(value)
    total = 0
    stack = [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str):
            total += _IN_CONTAINER * len(item) + 2
        elif isinstance(item, list | tuple):
            total += 2 + 2 * len(item)
            stack.extend(item)
        elif isinstance(item, dict):
            total += 2 + 4 * len(item)
            stack.extend(item)
            stack.extend(item.values())
        elif item is None or isinstance(item, bool):
            total += _BOOL
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 2
        elif isinstance(item, float):
            total += _FLOAT
        else:  # not JSON; the engine never makes such values, a host might
            total += _REPR
    return total
