"""Errors the engine raises. Each carries a message a person can act on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a flow document, located at a node or an edge when it can be."""

    message: str
    node: str | None = None
    edge: tuple[str, str, str | int] | None = None

    def __str__(self) -> str:
        if self.node is not None:
            return f"node {self.node!r}: {self.message}"
        if self.edge is not None:
            source, target, key = self.edge
            return f"edge {source!r} -> {target!r} ({key}): {self.message}"
        return self.message


class FlowInvalid(ValueError):
    """The flow document cannot run; `problems` lists every reason found."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


class NodeError(Exception):
    """A node failed. `retryable` errors are retried under the node's `retries` setting."""

    def __init__(self, message: str, *, retryable: bool = False, retry_after: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class ModelError(NodeError):
    """A model call failed; `status` is the HTTP status when there was one."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ):
        super().__init__(message, retryable=retryable, retry_after=retry_after)
        self.status = status


class NodeWaits(Exception):
    """Raised by a node's ``run`` that cannot finish until someone answers (an approval)
    or something changes (a budget): its node parks (``Schedule.node_waiting``) with
    ``wait``, JSON saying what it waits for, and finishes when the run is resumed."""

    def __init__(self, wait: dict[str, Any]):
        super().__init__(wait.get("kind", "wait"))
        self.wait = wait
