"""The provider-wide model-call cap on the in-process driver.

``settings.MODEL_CONCURRENCY`` (``SWITCHYARD_ANTHROPIC_CONCURRENCY``) caps the calls to a
provider that are in flight at once, whichever run makes them: on the celery driver the
cap lives in PostgreSQL (webapp.execution.slots, shared by every worker); here it is one
``asyncio.Semaphore`` per provider shared by every run of the process, so a burst of runs
queues for the provider instead of producing a storm of 429s.

A node takes its run's own slot (the flow's ``max_concurrency``) first and the provider's
second, and gives them back in the reverse order. Everyone takes them in that one order
and nobody holding a provider slot waits for anything else, so no two nodes can wait on
each other.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Self

from django.conf import settings

from graphs.nodes.base import Services

# By event loop (a semaphore belongs to the loop that first waits on it), then by provider
# and limit: a server has one loop, so one semaphore per provider. The limit is part of the
# key so that a changed setting (a test's) takes effect for the runs started after it.
ByProvider = dict[tuple[str, int], asyncio.Semaphore]
_provider: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ByProvider]
_provider = weakref.WeakKeyDictionary()


def provider_limit(client_name: str) -> int | None:
    """The provider's cap from settings; None when it is unlimited (unset, 0 or below)."""
    limit = settings.MODEL_CONCURRENCY.get(client_name)
    return limit if limit is not None and limit > 0 else None


def provider_semaphore(client_name: str) -> asyncio.Semaphore | None:
    """The running loop's semaphore for ``client_name``'s calls; None when unlimited."""
    limit = provider_limit(client_name)
    if limit is None:
        return None
    by_provider = _provider.setdefault(asyncio.get_running_loop(), {})
    key = (client_name, limit)
    if key not in by_provider:
        by_provider[key] = asyncio.Semaphore(limit)
    return by_provider[key]


class RunSlots:
    """A run's slots on the in-process driver: its own cap, then its provider's.

    Used exactly like ``asyncio.Semaphore`` with ``async with``, in its place, by the
    engine's NodeRunner (and shared with a map's items, as the run's semaphore is).
    """

    def __init__(self, run: asyncio.Semaphore, provider: asyncio.Semaphore | None):
        self.run = run
        self.provider = provider

    async def __aenter__(self) -> Self:
        await self.run.acquire()
        if self.provider is not None:
            try:
                await self.provider.acquire()
            except BaseException:  # cancelled while waiting: give the run's slot back
                self.run.release()
                raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self.provider is not None:
            self.provider.release()
        self.run.release()


def run_slots(services: Services) -> RunSlots:
    """Fresh slots for one run of a flow with these services (call it on the run's loop)."""
    return RunSlots(
        asyncio.Semaphore(services.max_concurrency),
        provider_semaphore(services.model_client.name),
    )
