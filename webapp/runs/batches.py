"""The batch lane's host side: runs parked on a Message Batch (a wait of kind ``batch``,
graphs.llm.batch) are polled, resumed with the batch's results once it has ended, and their
batches cancelled when they are.

A parked run with batch waits gets ``Run.batch_poll_at`` (a partial index over waiting
runs), when to look at its batches next: a sweep reads that index only. ``poll_due``
retrieves each due run's batches; one still processing is looked at again
``settings.BATCH_POLL_S`` later; one that has ended has its results read and resumes its
run through the driver, claiming the wait with one row update under the run's lock, so of
two sweeps only one resumes it. The node runs again and reads its calls' replies from the
answer (``node_resumed``); an item that errored or expired is streamed then.

Who sweeps: the approval timeouts' tickers (webapp.runs.timeouts: the embedded server's
loop; on the celery driver, every worker's sweeper), each sweep on a thread of its own,
where the batch calls run on a short-lived event loop and client.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from django.conf import settings
from django.db import transaction

from graphs.errors import ModelError
from graphs.llm import batch
from graphs.llm.anthropic import AnthropicClient
from webapp.credentials.service import model_key
from webapp.flows.models import Flow
from webapp.runs import waits as parked
from webapp.runs.models import Run

log = logging.getLogger(__name__)

T = TypeVar("T")

# Runs looked at per sweep at most; the rest wait for the next.
SWEEP = 50
# Who "answered" a batch wait (node_resumed's ``by``): the batch itself.
BY = "batch"


def waits(state: dict[str, Any] | None) -> dict[str, str]:
    """node -> batch id, of a parked state's batch waits."""
    found = {}
    for node, wait in ((state or {}).get("waiting") or {}).items():
        if isinstance(wait, dict) and wait.get("kind") == batch.KIND and wait.get("batch_id"):
            found[node] = str(wait["batch_id"])
    return found


def first_poll(state: dict[str, Any], now: float | None = None) -> dt.datetime | None:
    """When a run parking with ``state`` has its batches looked at first (Run.batch_poll_at)."""
    if not waits(state):
        return None
    now = time.time() if now is None else now
    return dt.datetime.fromtimestamp(now + settings.BATCH_POLL_S, tz=dt.UTC)


def poll_due(driver=None, now: float | None = None) -> int:
    """Look at the batches of every parked run due a look; how many runs were resumed."""
    if driver is None:
        from webapp import execution  # the driver imports this package

        driver = execution.driver()
    now = time.time() if now is None else now
    due = Run.objects.filter(
        status=Run.Status.WAITING,
        batch_poll_at__lte=dt.datetime.fromtimestamp(now, tz=dt.UTC),
    ).order_by("batch_poll_at")
    resumed = 0
    for run in due.only("pk", "flow_id", "started_by_id", "state")[:SWEEP]:
        ended = _ended(run)
        if not ended:
            later = dt.datetime.fromtimestamp(now + settings.BATCH_POLL_S, tz=dt.UTC)
            Run.objects.filter(pk=run.pk, status=Run.Status.WAITING).update(batch_poll_at=later)
            continue
        node, batch_id, results = ended
        try:
            driver.resume(run.pk, _claimer(run.pk, node, batch_id, results))
        except parked.NotWaiting:
            continue  # cancelled or resumed by another sweep meanwhile
        resumed += 1
    return resumed


def _ended(run: Run) -> tuple[str, str, dict[str, Any]] | None:
    """The first of the run's batches that has ended, with its results; None while all
    are processing (or could not be looked at: they are looked at again later)."""

    async def look(client: AnthropicClient) -> tuple[str, str, dict[str, Any]] | None:
        for node, batch_id in sorted(waits(run.state).items()):
            if await client.batch_status(batch_id) == "ended":
                return node, batch_id, await client.batch_results(batch_id)
        return None

    try:
        return _with_client(run, look)
    except ModelError:
        log.warning("polling the message batches of run %s failed", run.pk, exc_info=True)
        return None


def _claimer(run_id: int, node: str, batch_id: str, results: dict[str, Any]):
    return lambda: claim(run_id, node, batch_id, results)


def claim(run_id: int, node: str, batch_id: str, results: dict[str, Any]) -> parked.Answer:
    """Take the run out of waiting for ``node``'s ended batch; NotWaiting when it no
    longer waits on that batch (cancelled, or resumed by another process)."""
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run_id)
        if waits({"waiting": parked.waits_of(run)}).get(node) != batch_id:
            raise parked.NotWaiting(f"node {node!r} of run {run_id} does not wait on {batch_id}")
        Run.objects.filter(pk=run_id).update(batch_poll_at=None)
        return parked.claim_for(run, node, batch.answer(results), {BY: batch_id})


def cancel(run: Run, state: dict[str, Any] | None) -> None:
    """Cancel the batches a cancelled run's ``state`` (as it was parked) waited on. Best
    effort: the run is cancelled whatever the API says; a batch left running costs only
    what it had done."""
    found = waits(state)
    if not found:
        return

    async def cancel_all(client: AnthropicClient) -> None:
        for batch_id in sorted(set(found.values())):
            await client.cancel_batch(batch_id)

    try:
        _with_client(run, cancel_all)
    except ModelError:
        log.warning("cancelling the message batches of run %s failed", run.pk, exc_info=True)


def _with_client(run: Run, work: Callable[[AnthropicClient], Awaitable[T]]) -> T:
    """``work`` with a client of the run's key (its team's or starter's, else the
    server's), on an event loop of its own: a sweep runs on a thread with none."""
    team_id = Flow.objects.filter(pk=run.flow_id).values_list("team_id", flat=True).first()
    key = model_key(team_id, run.started_by_id)

    async def go() -> T:
        sdk = None
        if key is not None:
            import anthropic  # slow to load: only when a run polls

            sdk = anthropic.AsyncAnthropic(api_key=key)
        client = AnthropicClient(sdk, timeout_s=60)
        try:
            return await work(client)
        finally:
            await client.close()

    return asyncio.run(go())
