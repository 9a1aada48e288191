"""Flows the scale-out tests and the benchmark run: model calls the fake Anthropic server
answers slowly (``#fake:delay``), so that workers can be killed or frozen mid-call."""

from __future__ import annotations

from typing import Any


def _node(node_id: str, type_: str, **config: Any) -> dict[str, Any]:
    return {"id": node_id, "type": type_, "config": config, "position": {"x": 0, "y": 0}}


def _edge(source: str, target: str, source_port: str, target_port: str) -> dict[str, str]:
    return {
        "source": source,
        "target": target,
        "source_port": source_port,
        "target_port": target_port,
    }


def fan_out(
    branches: int = 5,
    delay_s: float = 0.3,
    final_delay_s: float | None = None,
    branch_delays: list[float] | None = None,
) -> dict:
    """input -> `branches` model calls in parallel -> merge -> a final call -> output.

    Each call takes `delay_s` on the server, or branch i `branch_delays[i-1]` and the final
    call `final_delay_s` when given.

    Branch i's prompt starts with ``branch i``, the final one's with ``final``, so the
    fake server's request log tells which node made each call.
    """
    final_delay = delay_s if final_delay_s is None else final_delay_s
    if branch_delays is None:
        branch_delays = [delay_s] * branches
    names = [f"b{i}" for i in range(1, len(branch_delays) + 1)]
    nodes = [_node("topic", "input", name="topic", default="scale-out")]
    edges = []
    for name, delay in zip(names, branch_delays, strict=True):
        nodes.append(
            _node(name, "llm", prompt=f"branch {name} on {{{{ topic }}}} #fake:delay={delay}")
        )
        edges.append(_edge("topic", name, "value", "topic"))
        edges.append(_edge(name, "join", "text", name))
    nodes.append(_node("join", "merge"))
    joined = " ".join(f"{{{{ parts.{name} }}}}" for name in names)
    # The fake server obeys a prompt's last delay, and the joined replies quote theirs.
    own = f"#fake:delay={final_delay}"
    nodes.append(_node("final", "llm", prompt=f"final {own}\n{joined}\n{own}"))
    nodes.append(_node("out", "output", name="answer"))
    edges += [_edge("join", "final", "value", "parts"), _edge("final", "out", "text", "value")]
    return {"directed": True, "multigraph": True, "graph": {"name": "Fan-out"}, "nodes": nodes,
            "edges": edges}  # fmt: skip


def chain(delays: list[float]) -> dict:
    """input -> step1 -> step2 -> ... -> output, step i sleeping delays[i-1] on the server."""
    nodes = [_node("topic", "input", name="topic", default="durability")]
    edges = []
    previous, port = "topic", "value"
    for i, delay in enumerate(delays, 1):
        step = f"s{i}"
        own = f"#fake:delay={delay}"  # last as well: the quoted reply carries the one before
        nodes.append(_node(step, "llm", prompt=f"step {step} {own}\n{{{{ x }}}}\n{own}"))
        edges.append(_edge(previous, step, port, "x"))
        previous, port = step, "text"
    nodes.append(_node("out", "output", name="answer"))
    edges.append(_edge(previous, "out", port, "value"))
    return {"directed": True, "multigraph": True, "graph": {"name": "Chain"}, "nodes": nodes,
            "edges": edges}  # fmt: skip


def mapped(
    items: list[str], delay_s: float = 0.3, concurrency: int = 4, item_events: int = 20
) -> dict:
    """A map over `items`, one model call per item; the first `item_events` stream theirs."""
    inner = {
        "directed": True,
        "multigraph": True,
        "graph": {"name": "one item"},
        "nodes": [
            _node("item", "input", name="item"),
            _node("call", "llm", prompt=f"item {{{{ item }}}} #fake:delay={delay_s}"),
            _node("result", "output", name="result"),
        ],
        "edges": [_edge("item", "call", "value", "item"), _edge("call", "result", "text", "value")],
    }
    nodes = [
        _node("items", "input", name="items", default=items),
        _node("each", "map", flow=inner, concurrency=concurrency, item_events=item_events),
        _node("out", "output", name="results"),
    ]
    edges = [_edge("items", "each", "value", "items"), _edge("each", "out", "results", "value")]
    return {"directed": True, "multigraph": True, "graph": {"name": "Map"}, "nodes": nodes,
            "edges": edges}  # fmt: skip


def echo_loop(iterations: int = 60) -> dict:
    """text -> a -> b -> a ...: two templates passing the input round, `iterations` times,
    each pass also to the output. No model calls.

    Every pass stores the text several times (each node's inputs and output), so a long
    text makes a big event log fast, as a 50 kB request into a two-node loop did.
    """
    nodes = [
        _node("text", "input", name="text"),
        _node("a", "template", template="{{ x }}", max_iterations=iterations),
        _node("b", "template", template="{{ y }}"),
        _node("out", "output", name="text"),
    ]
    edges = [
        _edge("text", "a", "value", "x"),
        _edge("a", "b", "text", "y"),
        _edge("b", "a", "text", "x"),
        _edge("b", "out", "text", "value"),
    ]
    return {"directed": True, "multigraph": True, "graph": {"name": "Echo loop"}, "nodes": nodes,
            "edges": edges}  # fmt: skip
