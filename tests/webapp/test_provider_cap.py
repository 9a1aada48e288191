"""The provider-wide model-call cap on the in-process driver: one setting
(SWITCHYARD_ANTHROPIC_CONCURRENCY, settings.MODEL_CONCURRENCY) caps the calls in flight
across every run of the process, as it caps them across every worker on the celery driver
(tests/scaleout/test_provider_cap.py)."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async

from tests.scaleout.flows import fan_out
from webapp import execution
from webapp.execution import plans
from webapp.execution.provider_cap import RunSlots
from webapp.flows import services
from webapp.runs.models import Run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def model(anthropic_env, settings):
    settings.RUN_DRIVER = "webapp.execution.inprocess.InProcessDriver"
    plans.engine_services.cache_clear()
    yield anthropic_env
    plans.engine_services.cache_clear()


@sync_to_async
def new_runs(owner, count: int, branches: int) -> list[Run]:
    flow = services.create(owner, "wide", fan_out(branches=branches, delay_s=0.4))
    return [
        Run.objects.create(
            flow=flow, flow_version=flow.current(), started_by=owner, inputs={"topic": f"t{i}"}
        )
        for i in range(count)
    ]


async def run_all(runs: list[Run]) -> list[str]:
    for run in runs:
        execution.start(run.pk)
    await execution.driver().wait_idle()
    return [(await Run.objects.aget(pk=run.pk)).status for run in runs]


async def test_alices_runs_together_never_have_more_model_calls_in_flight_than_the_cap(
    alice, model, settings
):
    settings.MODEL_CONCURRENCY = {"anthropic": 3}
    runs = await new_runs(alice, 3, branches=4)  # 12 branch calls that could all overlap

    assert await run_all(runs) == ["succeeded"] * 3
    assert len(model.message_requests) == 15
    # Held, and reached: the cap is a ceiling, not a slowdown to one call at a time.
    assert model.max_in_flight == 3


async def test_without_a_cap_the_same_runs_overlap_past_it(alice, model, settings):
    settings.MODEL_CONCURRENCY = {"anthropic": 0}  # 0: unlimited
    runs = await new_runs(alice, 3, branches=4)

    assert await run_all(runs) == ["succeeded"] * 3
    assert model.max_in_flight > 3


async def test_a_node_cancelled_waiting_for_the_provider_gives_its_runs_slot_back():
    run, provider = asyncio.Semaphore(1), asyncio.Semaphore(1)
    slots = RunSlots(run, provider)
    await provider.acquire()  # another run's call holds the provider's only slot
    waiting = asyncio.ensure_future(slots.__aenter__())
    await asyncio.sleep(0.01)
    assert run.locked()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert not run.locked()
    provider.release()
    async with slots:
        assert run.locked() and provider.locked()
    assert not run.locked() and not provider.locked()
