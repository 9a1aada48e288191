"""The celery driver: runs execute on Celery workers, node by node (coordinator.py).

Starting only hands the run to the broker: a worker begins it. When the broker is
unreachable the run stays queued, and a worker's sweeper begins it once it is back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.utils import timezone

from webapp.celery import app
from webapp.execution import coordinator, parking
from webapp.runs.approvals import Answer
from webapp.runs.budget_raise import BudgetRaise
from webapp.runs.models import Run

log = logging.getLogger(__name__)

QUEUED_NOTICE = (
    "The run is queued: the task queue (Redis) cannot be reached right now. "
    "It starts as soon as the queue is back."
)


class CeleryDriver:
    runs_outlive_the_server = True
    # Its runs park at breakpoints (webapp.runs.breakpoints) and resume on the workers.
    pauses_runs = True

    def start(self, run_id: int) -> str | None:
        return self.send_begin(run_id)

    @staticmethod
    def send_begin(run_id: int) -> str | None:
        try:
            app.send_task(coordinator.BEGIN_RUN, (run_id,), retry=False, ignore_result=True)
        except Exception:  # kombu's OperationalError, redis' ConnectionError, OSError...
            log.warning("run %s: the broker is unreachable; it stays queued", run_id)
            return QUEUED_NOTICE
        Run.objects.filter(pk=run_id).update(enqueued_at=timezone.now())
        return None

    def cancel(self, run_id: int) -> bool:
        return coordinator.cancel(run_id)

    def resume(self, run_id: int, claim: Callable[[], Answer | BudgetRaise]) -> None:
        """Claim a parked run (an answer, a pause's Continue or Step, a raised budget) and
        go on with it on the workers (webapp.execution.parking)."""
        parking.resume(run_id, claim)

    async def wait_idle(self) -> None:
        """Nothing runs in this process."""
