"""What a compiled flow hands the code that runs it: each node's spec, the inputs, the result.

Plain data, below both the compiler (``graphs.compile``) and the code that runs nodes
(``graphs.executor``, ``graphs.runner``, a worker elsewhere), so each of those can import it
without importing the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from graphs.llm.types import Usage
from graphs.nodes.base import CommonConfig, NodeType
from graphs.schedule import Status


@dataclass(frozen=True)
class NodeSpec:
    """What running one node needs; its wiring is in ``CompiledFlow.plan``."""

    id: str
    type: NodeType
    config: CommonConfig
    prepared: Any
    in_ports: tuple[str, ...]
    # The config as the cache key sees it; None when the node is not cached.
    cache_config: Mapping[str, Any] | None


@dataclass(frozen=True)
class InputSpec:
    node: str
    name: str
    has_default: bool
    default: Any


# A run's result: how it ended, or that it is parked waiting for someone (then ``state``).
RunStatus = Status | Literal["waiting"]


@dataclass(frozen=True)
class RunResult:
    status: RunStatus
    outputs: dict[str, Any]
    usage: Usage = field(default_factory=Usage)
    error: str | None = None
    failed_node: str | None = None
    usage_by_model: dict[str, Usage] = field(default_factory=dict)
    # A waiting run's state (``RunState.to_json``), what ``CompiledFlow.resume`` goes on from;
    # a resumed run's too when it is over, for its driver to store.
    state: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"status": self.status, "outputs": self.outputs}
        if self.error:
            result["error"] = self.error
        return result
