"""``python -m graphs``: validate or run a flow file from the command line.

Exit codes: 0 valid / succeeded, 1 failed or cancelled, 2 invalid flow or usage.

Saved flows that a ``subflow`` node or an agent's ``flow:`` tool calls are JSON files in
one directory (``--flows DIR``, else the flow file's own), named by reference:
``flow: "summarize"`` is ``DIR/summarize.json`` (``graphs.subflows.FileFlows``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

from graphs import document
from graphs.errors import FlowInvalid
from graphs.events import Event
from graphs.flowfiles import FileFlows
from graphs.naming import node_names, problem_text
from graphs.nodes.base import Services
from graphs.settings import SettingsError, default_services, env_int, services_from_env
from graphs.subflows import MAX_DEPTH
from graphs.validation import validate, warnings

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    pass


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "validate":
            return _validate(args.flow, args.flows)
        return asyncio.run(_run(args))
    except FlowInvalid as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_USAGE
    except (UsageError, SettingsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m graphs", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("validate", help="check a flow; one line per problem")
    run = commands.add_parser("run", help="run a flow and print its result as JSON")
    for command in (check, run):
        command.add_argument("flow", help="path to a flow document (JSON)")
        command.add_argument(
            "--flows",
            metavar="DIR",
            help="where the flows it calls are (REFERENCE.json); default: the flow's directory",
        )
    run.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a run input; VALUE is parsed as JSON when it can be, else taken as text",
    )
    run.add_argument("--inputs", metavar="JSON", help="all inputs as one JSON object")
    run.add_argument("--events", metavar="PATH", help="write events as JSON lines ('-': stdout)")
    return parser


def _read(path: str) -> Any:
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    return document.parse(text)


def _with_flows(services: Services, path: str, flows_dir: str | None) -> Services:
    """The services, lending the flows in ``flows_dir`` (the flow's own directory)."""
    flow_path = Path(path)
    directory = Path(flows_dir) if flows_dir is not None else flow_path.parent
    if not directory.is_dir():
        raise UsageError(f"--flows {directory}: not a directory")
    # The flow run is the first link of the chain, so a file that calls itself is refused.
    depth = env_int("SWITCHYARD_SUBFLOW_MAX_DEPTH", MAX_DEPTH, minimum=1)
    return replace(services, flows=FileFlows(directory, (flow_path.stem,), depth))


def _validate(path: str, flows_dir: str | None) -> int:
    graph = document.load(_read(path))
    names = node_names(graph)
    problems = validate(graph, _with_flows(default_services(), path, flows_dir))
    for problem in problems:
        print(problem_text(problem, names), file=sys.stderr)
    # Warnings do not make a flow invalid: the exit status is the problems' alone.
    for warning in warnings(graph):
        print(f"warning: {problem_text(warning, names)}", file=sys.stderr)
    if problems:
        return EXIT_USAGE
    print("valid")
    return EXIT_OK


def _inputs(args: argparse.Namespace) -> dict[str, Any]:
    inputs: dict[str, Any] = {}
    if args.inputs is not None:
        try:
            inputs = json.loads(args.inputs)
        except ValueError as exc:
            raise UsageError(f"--inputs is not valid JSON: {exc}") from None
        if not isinstance(inputs, dict):
            raise UsageError("--inputs must be a JSON object")
    for item in args.input:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise UsageError(f"--input takes NAME=VALUE, got {item!r}")
        try:
            inputs[name] = json.loads(raw)
        except ValueError:
            inputs[name] = raw
    return inputs


async def _run(args: argparse.Namespace) -> int:
    # Here, not at the top: ``validate`` needs none of the executor.
    from graphs.compile import compile_flow

    services = _with_flows(services_from_env(), args.flow, args.flows)
    graph = document.load(_read(args.flow))
    try:
        flow = compile_flow(graph, services)
        inputs = flow.resolve_inputs(_inputs(args))
    except FlowInvalid as exc:
        # Named as the canvas names them; a document that does not load has no names.
        for problem in exc.problems:
            print(problem_text(problem, node_names(graph)), file=sys.stderr)
        return EXIT_USAGE
    out: IO[str] | None = None
    if args.events == "-":
        out = sys.stdout
    elif args.events:
        try:
            out = open(args.events, "w", encoding="utf-8")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise UsageError(f"cannot write {args.events}: {exc.strerror}") from None

    def sink(event: Event) -> None:
        if out is not None:
            out.write(json.dumps(event, ensure_ascii=False) + "\n")

    try:
        run = flow.start(inputs, sink)
        loop = asyncio.get_running_loop()
        # Ctrl-C cancels the run cleanly: events and the result line are still written.
        loop.add_signal_handler(signal.SIGINT, run.cancel)
        loop.add_signal_handler(signal.SIGTERM, run.cancel)
        result = await run.wait()
    finally:
        if out is not None and out is not sys.stdout:
            out.close()
    print(json.dumps(result.as_dict(), ensure_ascii=False), flush=True)
    return EXIT_OK if result.status == "succeeded" else EXIT_FAILED
