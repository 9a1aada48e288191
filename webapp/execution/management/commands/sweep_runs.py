"""Run the celery driver's sweeper once (every worker runs it every second by itself):
take over lapsed leases, send tasks that never reached the broker, begin stranded runs."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from webapp.execution import sweeper


class Command(BaseCommand):
    help = (
        "Take over lapsed node leases, send what the broker missed and fire approval "
        "timeouts (celery driver)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.RUN_DRIVERS["celery"] != settings.RUN_DRIVER:
            raise CommandError("sweep_runs is for SWITCHYARD_RUN_DRIVER=celery")
        counts = sweeper.sweep()
        self.stdout.write(", ".join(f"{what}: {n}" for what, n in counts.items()))
