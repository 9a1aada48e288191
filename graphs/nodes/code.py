"""``code``: runs the author's Python ``main(...)`` in the OS sandbox of ``graphs.codebox``.

The parameters of ``main`` are the node's input ports; the dict it returns carries its
output ports, named in config ``outputs``. What it prints goes to the inspector (the
visit's ``detail.stdout``); an exception fails the node with its traceback.

Not cached by default (``NodeType.cacheable``): ``main`` may read the clock or draw random
numbers, and set order differs between processes; ``cache: true`` opts a pure ``main`` in.

The ports are read from the source without running it (``ast``):

>>> from graphs.nodes import NODE_TYPES
>>> code = NODE_TYPES["code"]
>>> config = code.Config.model_validate(
...     {"code": "def main(items, sep=', '):\\n    return {'text': sep.join(items)}",
...      "outputs": ["text"]}
... )
>>> sorted(code.input_ports(config)), sorted(code.output_ports(config))
(['items', 'sep'], ['text'])
>>> code.problems(code.Config.model_validate({"code": "def main(*args): pass"}), None)
[FieldProblem(field='code', message='main takes *args: name each input port as a parameter')]
"""

from __future__ import annotations

import ast
import functools
from typing import Any

from pydantic import Field, field_validator

from graphs import codebox
from graphs.errors import NodeError
from graphs.nodes.base import CommonConfig, FieldProblem, NodeContext, NodeType, Services
from graphs.sandbox import SandboxError

DEFAULT_CODE = """def main(text):
    words = text.split()
    return {"words": words, "count": len(words)}
"""


class CodeConfig(CommonConfig):
    code: str = Field(
        default=DEFAULT_CODE,
        max_length=100_000,
        description="Python defining main(...): its parameters are the input ports, and it "
        "returns a dict with a value for each output. Runs sandboxed: standard library only, "
        "no network, no files beyond its working directory, no processes.",
        json_schema_extra={"widget": "source", "rows": 12},
    )
    outputs: list[str] = Field(
        default_factory=lambda: ["words", "count"],
        min_length=1,
        max_length=50,
        description="The output ports, one per line: keys of the dict main returns.",
    )

    @field_validator("outputs")
    @classmethod
    def _port_names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not name.isidentifier() or name == "error":
                raise ValueError(f"output {name!r} must be a name such as result (not error)")
        if len(set(names)) != len(names):
            raise ValueError("outputs must be unique")
        return names


@functools.lru_cache(maxsize=256)
def signature(source: str) -> tuple[tuple[str, ...], str | None]:
    """``main``'s parameter names, and what is wrong with the source (None if nothing).

    >>> signature("def main(a, *, b=1):\\n    return {}")
    (('a', 'b'), None)
    >>> signature("def main(:")[1]
    'line 1: invalid syntax'
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        return (), f"line {exc.lineno}: {exc.msg}"
    except (ValueError, MemoryError, RecursionError) as exc:
        return (), f"cannot be read: {exc}"
    mains = [
        node
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "main"
    ]
    if not mains:
        return (), "defines no function main(...) at its top level"
    args = mains[-1].args
    if args.vararg or args.kwarg:
        star = "*args" if args.vararg else "**kwargs"
        return (), f"main takes {star}: name each input port as a parameter"
    if args.posonlyargs:
        return (), "main's parameters must not be positional-only: they are passed by name"
    if isinstance(mains[-1], ast.AsyncFunctionDef):
        return (), "main must be a plain def, not async def"
    names = tuple(arg.arg for arg in [*args.args, *args.kwonlyargs])
    return names, None


class CodeNode(NodeType):
    name = "code"
    label = "Python code"
    description = "Runs your main(...) in a sandbox: inputs are its parameters, outputs its dict."
    category = "text"
    Config = CodeConfig
    default_config = {"code": DEFAULT_CODE, "outputs": ["words", "count"]}

    def input_ports(self, config: CodeConfig) -> frozenset[str]:
        return frozenset(signature(config.code)[0])

    def output_ports(self, config: CodeConfig) -> frozenset[str]:
        return frozenset(config.outputs)

    def problems(self, config: CodeConfig, services: Services | None) -> list[FieldProblem]:
        wrong = signature(config.code)[1]
        return [FieldProblem("code", wrong)] if wrong else []

    async def run(self, ctx: NodeContext, config: CodeConfig, inputs: dict[str, Any]) -> dict:
        try:
            result = await codebox.run(config.code, inputs, config.outputs, ctx.services.code)
        except codebox.CodeFailed as failed:
            if failed.stdout:
                ctx.detail["stdout"] = failed.stdout
            raise NodeError(str(failed)) from None
        except SandboxError as exc:
            raise NodeError(f"code {exc}") from None
        if result.stdout:
            ctx.detail["stdout"] = result.stdout
        return result.outputs
