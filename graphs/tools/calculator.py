"""A calculator tool: arithmetic on a parsed AST, never eval.

Only a whitelist of AST nodes is walked, and every operation whose cost grows with its
operands (``**``, ``*``, ``round`` with negative digits) is bounded *before* it runs, so an
expression such as ``9**9**9`` is refused in microseconds instead of pinning a core.

Result formatting: ints print as ints; floats print with up to 15 significant digits (enough
to hide binary noise such as ``0.1 + 0.2``) and keep a trailing ``.0`` when integral, so
``10/2`` gives ``5.0`` -- true division is always a float, as in Python.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable
from typing import Any

from graphs.tools.base import ToolError, ToolSettings

MAX_EXPRESSION_CHARS = 1000
MAX_NODES = 200
# About 1233 decimal digits: far beyond any real calculation, small enough to stay instant.
MAX_INT_BITS = 4096
MAX_ROUND_DIGITS = 100

Number = int | float

_CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}


def _min(*args: Number) -> Number:
    return min(args)


def _max(*args: Number) -> Number:
    return max(args)


def _round(x: Number, ndigits: Number | None = None) -> Number:
    if ndigits is None:
        return round(x)
    if not isinstance(ndigits, int):
        raise ToolError("round() digits must be an integer")
    # round(int, -n) computes 10**n internally, so n must be bounded.
    if abs(ndigits) > MAX_ROUND_DIGITS:
        raise ToolError(f"round() digits must be within ±{MAX_ROUND_DIGITS}")
    return round(x, ndigits)


def _log(x: Number, base: Number | None = None) -> float:
    return math.log(x) if base is None else math.log(x, base)


# name -> (function, min args, max args)
_FUNCTIONS: dict[str, tuple[Callable[..., Number], int, int]] = {
    "sqrt": (math.sqrt, 1, 1),
    "abs": (abs, 1, 1),
    "round": (_round, 1, 2),
    "min": (_min, 1, 50),
    "max": (_max, 1, 50),
    "floor": (math.floor, 1, 1),
    "ceil": (math.ceil, 1, 1),
    "log": (_log, 1, 2),
    "log10": (math.log10, 1, 1),
    "exp": (math.exp, 1, 1),
    "sin": (math.sin, 1, 1),
    "cos": (math.cos, 1, 1),
    "tan": (math.tan, 1, 1),
}

_BINARY_SYMBOLS: dict[type[ast.operator], str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
    ast.MatMult: "@",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.BitAnd: "&",
}
_ALLOWED_BINARY = frozenset({ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow})

# Friendly names for constructs the model might try, so the refusal says what was wrong.
_FORBIDDEN_NAMES: dict[type[ast.AST], str] = {
    ast.Attribute: "attribute access",
    ast.Subscript: "subscripts",
    ast.Lambda: "lambda",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "comprehensions",
    ast.List: "lists",
    ast.Tuple: "tuples",
    ast.Set: "sets",
    ast.Dict: "dicts",
    ast.Compare: "comparisons",
    ast.BoolOp: "boolean operators",
    ast.IfExp: "conditional expressions",
    ast.JoinedStr: "strings",
    ast.NamedExpr: "assignment expressions",
    ast.Starred: "starred arguments",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.Slice: "slices",
}

_HELP = (
    "allowed: numbers, + - * / // % **, parentheses, "
    f"functions {', '.join(_FUNCTIONS)}, constants {', '.join(_CONSTANTS)}"
)


def evaluate(expression: str) -> Number:
    """Evaluate an arithmetic expression; raise ToolError for anything outside the whitelist."""
    if not isinstance(expression, str):
        raise ToolError("expression must be a string")
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolError(f"expression is too long (max {MAX_EXPRESSION_CHARS} characters)")
    if not expression.strip():
        raise ToolError("expression is empty")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ToolError(f"invalid expression: {exc.msg}") from None
    except (RecursionError, MemoryError, ValueError):
        raise ToolError("invalid expression: too deeply nested") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise ToolError(f"expression is too complex (max {MAX_NODES} syntax nodes)")
    try:
        return _eval(tree.body)
    except ToolError:
        raise
    except ZeroDivisionError:
        raise ToolError("division by zero") from None
    except OverflowError:
        raise ToolError("result is too large") from None
    except ValueError as exc:
        # math domain errors, e.g. sqrt(-1) or log(0)
        raise ToolError(f"math error: {exc}") from None
    except RecursionError:
        raise ToolError("expression is too deeply nested") from None
    except TypeError as exc:
        raise ToolError(f"invalid operation: {exc}") from None


def format_number(value: Number) -> str:
    if isinstance(value, int):
        return str(value)
    text = format(value, ".15g")
    if all(c in "-0123456789" for c in text):
        text += ".0"
    return text


def _check(value: Any) -> Number:
    if isinstance(value, bool) or not isinstance(value, int | float):
        if isinstance(value, complex):
            raise ToolError("complex results are not supported")
        raise ToolError(f"unsupported value of type {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ToolError("result is too large (or not a number)")
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise _too_large()
    return value


def _too_large() -> ToolError:
    digits = int(MAX_INT_BITS * math.log10(2))
    return ToolError(f"result is too large (integers are limited to about {digits} digits)")


def _eval(node: ast.AST) -> Number:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, str | bytes):
            raise ToolError(f"not allowed: strings; {_HELP}")
        if isinstance(node.value, complex):
            raise ToolError("not allowed: complex numbers")
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise ToolError(f"not allowed: {node.value!r}; {_HELP}")
        return _check(node.value)
    if isinstance(node, ast.BinOp):
        op = type(node.op)
        if op not in _ALLOWED_BINARY:
            symbol = _BINARY_SYMBOLS.get(op, op.__name__)
            raise ToolError(f"not allowed: operator {symbol!r}; {_HELP}")
        left = _eval(node.left)
        right = _eval(node.right)
        return _check(_binary(op, left, right))
    if isinstance(node, ast.UnaryOp):
        if isinstance(node.op, ast.USub):
            return _check(-_eval(node.operand))
        if isinstance(node.op, ast.UAdd):
            return _check(+_eval(node.operand))
        symbol = "~" if isinstance(node.op, ast.Invert) else "not"
        raise ToolError(f"not allowed: operator {symbol!r}; {_HELP}")
    if isinstance(node, ast.Name):
        if node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        if node.id in _FUNCTIONS:
            raise ToolError(f"{node.id} is a function; call it like {node.id}(x)")
        raise ToolError(f"unknown name {node.id!r}; {_HELP}")
    if isinstance(node, ast.Call):
        return _check(_call(node))
    what = _FORBIDDEN_NAMES.get(type(node), type(node).__name__)
    raise ToolError(f"not allowed: {what}; {_HELP}")


def _call(node: ast.Call) -> Number:
    if not isinstance(node.func, ast.Name):
        if isinstance(node.func, ast.Attribute):
            raise ToolError(f"not allowed: attribute access; {_HELP}")
        raise ToolError(f"only calls of named functions are allowed; {_HELP}")
    name = node.func.id
    if name not in _FUNCTIONS:
        raise ToolError(f"not allowed: function {name!r}; {_HELP}")
    if node.keywords:
        raise ToolError(f"{name}() does not take keyword arguments")
    func, low, high = _FUNCTIONS[name]
    if not low <= len(node.args) <= high:
        count = str(low) if low == high else f"{low} to {high}"
        raise ToolError(f"{name}() takes {count} argument(s), got {len(node.args)}")
    args = [_eval(arg) for arg in node.args]
    return func(*args)


def _binary(op: type[ast.operator], left: Number, right: Number) -> Number:
    if op is ast.Add:
        return left + right
    if op is ast.Sub:
        return left - right
    if op is ast.Mult:
        # An int product's size is known before computing it.
        if (
            isinstance(left, int)
            and isinstance(right, int)
            and left.bit_length() + right.bit_length() > MAX_INT_BITS + 1
        ):
            raise _too_large()
        return left * right
    if op is ast.Div:
        return left / right
    if op is ast.FloorDiv:
        return left // right
    if op is ast.Mod:
        return left % right
    return _power(left, right)


def _power(base: Number, exponent: Number) -> Number:
    growing = isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1
    # log2(|base|**exp) = exp * log2(|base|): refuse before Python starts multiplying.
    if growing and exponent * math.log2(abs(base)) > MAX_INT_BITS:
        raise _too_large()
    # Float powers overflow (OverflowError) or go complex quickly; _check refuses both.
    return base**exponent


class Calculator:
    """Built-in tool: evaluate an arithmetic expression exactly (ints) or in double precision."""

    name: str = "calculator"
    deterministic: bool = True
    description: str = (
        "Evaluate an arithmetic expression and return the number. Use it for any calculation "
        "instead of doing arithmetic in your head. Supports + - * / // % ** and parentheses, "
        "integers of any reasonable size (exact), floats, the functions sqrt, abs, round, min, "
        "max, floor, ceil, log (natural, or log(x, base)), log10, exp, sin, cos, tan (radians) "
        "and the constants pi and e. Example: 'sqrt(2) * (3 + 4) ** 2 / 7'. No variables, "
        "strings or other Python."
    )
    input_schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "expression": {
                "type": "string",
                "description": "The arithmetic expression, e.g. '(17 + 5) * 3 / 4'.",
            }
        },
        "required": ["expression"],
    }

    async def call(self, args: dict[str, Any], settings: ToolSettings) -> str:
        expression = args.get("expression")
        if not isinstance(expression, str):
            raise ToolError("missing 'expression' (a string)")
        return format_number(evaluate(expression))
