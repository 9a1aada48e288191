"""Tick every enabled schedule once: record and start what is due now (for deployments
that tick from cron or a timer, and for tests, which pass the clock with --now)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from webapp.schedules import service


class Command(BaseCommand):
    help = "Record and start every schedule's due tick once; prints what it did as JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--now",
            help="tick as if the clock said this (ISO 8601 with an offset); default: now",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        now = timezone.now()
        if options["now"]:
            try:
                now = dt.datetime.fromisoformat(options["now"])
            except ValueError:
                raise CommandError(f"--now: {options['now']!r} is not an ISO 8601 time") from None
            if now.tzinfo is None:
                raise CommandError("--now needs an offset or Z, e.g. 2026-03-29T01:00:00Z")
        report = service.tick(now)
        self.stdout.write(json.dumps(report.as_dict()))
