"""Celery side of schedules: every worker ticks (webapp.schedules.ticker), and
``tick_schedules`` is a task for a beat schedule, should a deployment prefer beat."""

from __future__ import annotations

from celery.signals import worker_ready, worker_shutting_down
from django.utils import timezone

from webapp.celery import app
from webapp.schedules import service, ticker


@app.task(name="schedules.tick", ignore_result=True)
def tick_schedules() -> dict[str, int]:
    return service.tick(timezone.now()).as_dict()


@worker_ready.connect
def _start_ticker(**_) -> None:
    ticker.start_in_worker()


@worker_shutting_down.connect
def _stop_ticker(**_) -> None:
    ticker.stop_in_worker()
