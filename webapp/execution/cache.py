"""The engine's node cache, kept in the database (CacheEntry), one flow at a time.

A lookup only ever matches entries of the run's own flow: whoever may run a flow may see
what its runs produced, so a hit never shows anyone an output from a flow they cannot
see, even when their node is identical to someone else's.

A cache is an optimisation: a database error on a lookup is a miss and on a store is
logged and dropped, never a failed node.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from django.db import DatabaseError
from django.db.models import F

from graphs.cache import CachedOutput
from graphs.llm.types import Usage
from webapp.execution import dbthreads
from webapp.runs.models import CacheEntry

log = logging.getLogger(__name__)

# Lookups and stores get threads (and database connections) of their own, like the
# recorder's writes: on the shared thread every node of a run would queue behind page
# requests. Lookups are reads that a few threads serve side by side; stores are writes,
# one at a time. On one thread together, a burst's lookups (bench/load.py: 250 model nodes
# starting at once) queued behind its stores, and the stores behind the lookups.
_lookups = ThreadPoolExecutor(max_workers=3, thread_name_prefix="node-cache")
_stores = ThreadPoolExecutor(max_workers=1, thread_name_prefix="node-cache-store")


class DbNodeCache:
    """graphs.cache.NodeCache over CacheEntry rows of one flow; stores name `run_id`."""

    def __init__(self, flow_id: int, run_id: int | None = None):
        self.flow_id = flow_id
        self.run_id = run_id

    async def get(self, key: str) -> CachedOutput | None:
        try:
            return await dbthreads.on(_lookups, lookup, self.flow_id, key)
        except DatabaseError:
            log.exception("node cache lookup failed; running the node")
            return None

    async def put(self, key: str, node_type: str, entry: CachedOutput) -> None:
        try:
            await dbthreads.on(_stores, store, self.flow_id, self.run_id, key, node_type, entry)
        except DatabaseError:
            log.exception("node cache store failed; the result is not cached")


def lookup(flow_id: int, key: str) -> CachedOutput | None:
    """The flow's entry for `key`, counting the hit; None when there is none."""
    row = (
        CacheEntry.objects.filter(flow_id=flow_id, key=key)
        .values("pk", "output", "text", "model", "usage", "detail", "run_id")
        .first()
    )
    if row is None:
        return None
    CacheEntry.objects.filter(pk=row["pk"]).update(hits=F("hits") + 1)
    usage = row["usage"] or {}
    return CachedOutput(
        output=row["output"],
        text=row["text"],
        model=row["model"] or None,
        usage=Usage.from_dict(usage),
        detail=row["detail"] or {},
        source=f"run {row['run_id']}" if row["run_id"] else None,
    )


def store(flow_id: int, run_id: int | None, key: str, node_type: str, entry: CachedOutput) -> None:
    """Insert or replace the flow's entry for `key` (an ignore-cache run refreshes it)."""
    row = CacheEntry(
        flow_id=flow_id,
        key=key,
        node_type=node_type,
        output=entry.output,
        text=entry.text,
        model=entry.model or "",
        usage=entry.usage.as_dict(),
        detail=dict(entry.detail),
        run_id=run_id,
    )
    CacheEntry.objects.bulk_create(
        [row],
        update_conflicts=True,
        unique_fields=["flow", "key"],
        update_fields=["node_type", "output", "text", "model", "usage", "detail", "run"],
    )
