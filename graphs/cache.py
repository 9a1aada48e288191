"""The node cache: reuse the output of an identical earlier execution instead of running again.

Two executions are identical when the node's type and type version, its config (minus
the keys that only steer the executor), the model settings and its input values are the
same; ``cache_key`` hashes exactly those. The engine only asks a ``NodeCache`` for keys
and hands it results; where entries live, and who may read them, is the host's business
(the web app keeps them per flow).

>>> import asyncio
>>> key = cache_key(
...     node_type="llm",
...     version=1,
...     config={"prompt": "Say {{ x }}", "retries": 2},
...     default_model="claude-sonnet-4-6",
...     inputs={"x": "hi"},
... )
>>> len(key)
64
>>> key == cache_key(
...     node_type="llm",
...     version=1,
...     config={"prompt": "Say {{ x }}", "retries": 5},  # retries steer the executor only
...     default_model="claude-sonnet-4-6",
...     inputs={"x": "hi"},
... )
True
>>> print(cache_key(
...     node_type="llm", version=1, config={}, default_model="m", inputs={"x": object()}
... ))
None
>>> cache = MemoryCache()
>>> asyncio.run(cache.put(key, "llm", CachedOutput({"text": "hello"}, text="hello")))
>>> asyncio.run(cache.get(key)).output
{'text': 'hello'}
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from graphs.llm.types import Usage

# Config keys that change how the executor treats a node, never what it computes; and the
# provider's prompt cache lifetime (cache_ttl), which changes what a call costs, not its reply.
EXECUTOR_KEYS = frozenset(
    {"max_iterations", "timeout_s", "retries", "on_error", "cache", "cache_ttl"}
)


@dataclass(frozen=True)
class CachedOutput:
    """A successful execution, as the cache keeps it."""

    output: dict[str, Any]
    # What the node streamed the first time; a hit streams it again in one piece.
    text: str = ""
    model: str | None = None
    # What the original execution used, which is what a hit saves.
    usage: Usage = field(default_factory=Usage)
    detail: dict[str, Any] = field(default_factory=dict)
    source: str | None = None  # e.g. "run 42", shown on the hit


class NodeCache(Protocol):
    """Where cached outputs live. ``get`` returns None on a miss."""

    async def get(self, key: str) -> CachedOutput | None: ...

    async def put(self, key: str, node_type: str, entry: CachedOutput) -> None: ...


def cache_key(
    *,
    node_type: str,
    version: int,
    config: Mapping[str, Any],
    default_model: str,
    inputs: Mapping[str, Any],
    client: str = "",
) -> str | None:
    """The sha256 (hex) naming one execution, or None when the inputs are not plain JSON.

    ``config`` is the node's config as JSON; executor-only keys are left out here.
    ``client`` names the model client, so that the offline model's replies are never
    served once a real model is configured.
    """
    document = {
        "type": node_type,
        "version": version,
        "config": {k: v for k, v in config.items() if k not in EXECUTOR_KEYS},
        "default_model": default_model,
        "client": client,
        "inputs": inputs,
    }
    try:
        canonical = json.dumps(
            document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode("utf-8")
    except (TypeError, ValueError, RecursionError):
        # Values without one JSON spelling (objects, NaN, lone surrogates) cannot be compared.
        return None
    return hashlib.sha256(canonical).hexdigest()


class MemoryCache:
    """A ``NodeCache`` in a dict, for tests and one-process tools. ``source`` tags its hits."""

    def __init__(self, source: str | None = None):
        self.entries: dict[str, CachedOutput] = {}
        self.source = source
        self.gets = 0
        self.puts = 0

    async def get(self, key: str) -> CachedOutput | None:
        self.gets += 1
        entry = self.entries.get(key)
        if entry is not None and self.source is not None:
            return replace(entry, source=self.source)
        return entry

    async def put(self, key: str, node_type: str, entry: CachedOutput) -> None:
        self.puts += 1
        self.entries[key] = entry
