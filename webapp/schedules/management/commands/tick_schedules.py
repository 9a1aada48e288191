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
    help = "Record and start every schedule's due tick; prints what it did as JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--now",
            action="append",
            help="tick as if the clock said this (ISO 8601 with an offset); given several "
            "times, tick at each in turn. Default: the clock.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        times = [_parse(value) for value in options["now"] or []] or [timezone.now()]
        total: dict[str, int] = {}
        for now in times:
            for outcome, count in service.tick(now).as_dict().items():
                total[outcome] = total.get(outcome, 0) + count
        self.stdout.write(json.dumps(total))


def _parse(value: str) -> dt.datetime:
    try:
        now = dt.datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--now: {value!r} is not an ISO 8601 time") from None
    if now.tzinfo is None:
        raise CommandError("--now needs an offset or Z, e.g. 2026-03-29T01:00:00Z")
    return now
