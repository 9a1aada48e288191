"""Mark runs that a stopped server left queued or running as failed, so they can be resumed.

Only right for the in-process driver: its runs live and die with the server process, so at
start-up nothing can still be executing them. Under a driver whose runs outlive the web
server (celery's workers) the command does nothing.

The event log stays the single source: each such run gets what the engine would have
written had it stopped cleanly, a `node_failed` for every node visit left open and a
`run_finished` (status failed), appended after its last event, priced and written with the
row in one transaction by the run's event log (webapp.runs.eventlog.append).
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction
from django.db.models import Max

from graphs.log import fold
from webapp import execution
from webapp.runs import eventlog
from webapp.runs.limits import logged_open_visits
from webapp.runs.models import Run, RunEvent

DRIVER_NAMES = {path: name for name, path in settings.RUN_DRIVERS.items()}
INTERRUPTED = "interrupted: the server stopped while this run was in progress"
UNFINISHED = (Run.Status.QUEUED, Run.Status.RUNNING)


class Command(BaseCommand):
    help = "Mark runs left queued or running by a stopped server as failed (in-process driver)."

    def handle(self, *args: Any, **options: Any) -> None:
        if execution.driver().runs_outlive_the_server:
            # Workers outlive the web server: a run left running may well still be running.
            driver = DRIVER_NAMES.get(settings.RUN_DRIVER, settings.RUN_DRIVER)
            self.stdout.write(f"skipped: runs of the {driver} driver outlive the server")
            return
        recovered = recover_runs()
        if recovered:
            ids = ", ".join(str(run_id) for run_id in recovered)
            self.stdout.write(f"marked {len(recovered)} interrupted run(s) failed: {ids}")


def recover_runs() -> list[int]:
    """Close every queued or running run as failed; the ids of those it closed."""
    recovered = []
    unfinished = Run.objects.filter(status__in=UNFINISHED).order_by("pk")
    for run_id in list(unfinished.values_list("pk", flat=True)):
        with transaction.atomic():
            # Checked again inside the write transaction: a run may have ended meanwhile.
            if Run.objects.filter(pk=run_id, status__in=UNFINISHED).exists():
                eventlog.append(run_id, closing_events(run_id), limited=False)
                recovered.append(run_id)
    return recovered


def closing_events(run_id: int) -> list[dict[str, Any]]:
    """The events that end an interrupted run (the event log numbers and prices them)."""
    events = RunEvent.objects.filter(run_id=run_id)
    last_seq = events.aggregate(last=Max("seq"))["last"] or 0
    # Stamped with the last sign of life, not with now: the server may have been down for
    # days, and that is no part of the run's duration or its timeline.
    last = events.filter(seq=last_seq).values_list("payload__ts", flat=True).first()
    ts = last if last is not None else time.time()

    open_visits = logged_open_visits(run_id)
    priced = events.filter(type__in=["run_started", "node_finished"]).order_by("seq")
    # The run's usage as far as its log goes (graphs.log adds up its finished nodes).
    log = fold(priced.values_list("payload", flat=True))
    usage, usage_by_model = log.usage, log.usage_by_model
    # An agent cut mid-loop paid for the turns it recorded, though its node never finished.
    spent = events.filter(type="agent_turn").values_list("payload", flat=True)
    for turn in spent:
        visit = (turn.get("node"), turn.get("iteration") or 1)
        if visit in open_visits and not turn.get("source") and isinstance(turn.get("usage"), dict):
            _add(usage, turn["usage"])
            _add(usage_by_model.setdefault(str(turn.get("model")), {}), turn["usage"])

    closing = [
        {"type": "node_failed", "node": node, "iteration": iteration, "error": INTERRUPTED}
        for node, iteration in open_visits
    ]
    closing.append(
        {
            "type": "run_finished",
            "status": Run.Status.FAILED.value,
            "outputs": {},
            "usage": usage,
            "usage_by_model": usage_by_model,
            "error": INTERRUPTED,
        }
    )
    return [{"ts": ts, **event} for event in closing]


def _add(total: dict[str, int], usage: dict[str, Any]) -> None:
    for key in ("input_tokens", "output_tokens", "thinking_tokens"):
        if usage.get(key) or key in total:
            total[key] = total.get(key, 0) + int(usage.get(key) or 0)
