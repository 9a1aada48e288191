"""``python -m graphs``: validate or run a flow file from the command line.

Exit codes: 0 valid / succeeded, 1 failed or cancelled, 2 invalid flow or usage, 3 waiting.

A run that waits for someone (an ``approval`` node) prints what it waits for and exits 3,
its state written to ``--state FILE``. ``run FLOW --resume FILE --answer ACTION`` (with
``--value NAME=VALUE`` for the form, ``--node`` when several wait, ``--by`` who answers)
goes on from that file and writes the state back, so the same wait is answered once;
``--answer timeout`` takes a timed wait's ``timeout`` port.

Saved flows that a ``subflow`` node or an agent's ``flow:`` tool calls are JSON files in
one directory (``--flows DIR``, else the flow file's own), named by reference:
``flow: "summarize"`` is ``DIR/summarize.json`` (``graphs.subflows.FileFlows``).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from graphs import document
from graphs.errors import FlowInvalid
from graphs.flowfiles import FileFlows
from graphs.naming import node_names, problem_text
from graphs.settings import SettingsError, default_services, env_int, services_from_env
from graphs.subflows import MAX_DEPTH
from graphs.validation import validate, warnings

if TYPE_CHECKING:
    from graphs.events import Event
    from graphs.nodes.base import Services

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_WAITING = 0, 1, 2, 3


class UsageError(Exception):
    pass


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "validate":
            return _validate(args.flow, args.flows)
        # Here, not at the top, as everything ``run`` alone needs: ``validate`` starts
        # faster without it (issue 18: the command line starts in under 0.4 s).
        import asyncio

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
    run.add_argument("--state", metavar="FILE", help="where a run that waits keeps its state")
    run.add_argument("--resume", metavar="FILE", help="go on with the waiting run kept in FILE")
    run.add_argument("--answer", metavar="ACTION", help="with --resume: the action taken")
    run.add_argument("--node", help="with --resume: the waiting node answered")
    run.add_argument(
        "--value", action="append", default=[], metavar="NAME=VALUE", help="a form field's value"
    )
    run.add_argument("--by", default="cli", help="with --resume: who answers (default: cli)")
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
    import asyncio
    import signal

    from graphs.compile import compile_flow
    from graphs.schedule import StepRefused

    services = _with_flows(services_from_env(), args.flow, args.flows)
    graph = document.load(_read(args.flow))
    try:
        flow = compile_flow(graph, services)
        # A resumed run's inputs are in its state: none are asked for again.
        inputs = {} if args.resume else flow.resolve_inputs(_inputs(args))
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

    seq = [0]

    def counted(event: Event) -> None:
        seq[0] = event["seq"]
        sink(event)

    state_path = args.resume or args.state
    try:
        if args.resume:
            saved = _read_json(args.resume)
            node, iteration, outputs, by = _answer(saved["state"], args)
            try:
                result = await flow.resume(
                    saved["state"], node, iteration, outputs, by, counted, seq=saved["seq"]
                )
            except StepRefused as exc:
                raise UsageError(str(exc)) from None
        else:
            run = flow.start(inputs, counted)
            loop = asyncio.get_running_loop()
            # Ctrl-C cancels the run cleanly: events and the result line are still written.
            loop.add_signal_handler(signal.SIGINT, run.cancel)
            loop.add_signal_handler(signal.SIGTERM, run.cancel)
            result = await run.wait()
    finally:
        if out is not None and out is not sys.stdout:
            out.close()
    if result.state is not None and state_path:
        # Written back after a resume too: the answered wait is then refused a second time.
        Path(state_path).write_text(json.dumps({"state": result.state, "seq": seq[0]}))
    if result.status == "waiting":
        assert result.state is not None
        waiting = {"status": "waiting", "waiting": result.state["waiting"]}
        print(json.dumps(waiting, ensure_ascii=False), flush=True)
        if not state_path:
            print("error: the run waits; pass --state FILE to keep it", file=sys.stderr)
        return EXIT_WAITING
    print(json.dumps(result.as_dict(), ensure_ascii=False), flush=True)
    return EXIT_OK if result.status == "succeeded" else EXIT_FAILED


def _read_json(path: str) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the run state in {path}: {exc}") from None


def _answer(state: dict[str, Any], args: argparse.Namespace) -> tuple[str, int, dict, dict]:
    """The node answered, its iteration, and the outputs ``--answer`` and ``--value`` give."""
    from graphs.nodes import approval

    waiting = state.get("waiting", {})
    if args.node is None and len(waiting) > 1:
        raise UsageError(f"several nodes wait ({', '.join(sorted(waiting))}): pass --node")
    node = args.node or next(iter(waiting), None)
    if node is None or node not in waiting:
        raise UsageError(f"node {node!r} does not wait: the run is {state.get('phase')}")
    if not args.answer:
        raise UsageError(f"--answer one of: {', '.join(waiting[node].get('actions', []))}")
    wait, by = waiting[node], {"user": args.by}
    values = {}
    for item in args.value:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise UsageError(f"--value takes NAME=VALUE, got {item!r}")
        values[name] = raw
    if args.answer == approval.TIMEOUT_PORT and wait.get("timeout_s") is not None:
        outputs = approval.timed_out(wait)
    else:
        try:
            outputs = approval.answer(wait, args.answer, values, by=by)
        except approval.AnswerInvalid as exc:
            raise UsageError(str(exc)) from None
    return node, state["iterations"][node], outputs, by
