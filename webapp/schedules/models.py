from __future__ import annotations

from django.conf import settings
from django.db import models

from webapp.flows.models import Flow
from webapp.runs.models import Run


class Schedule(models.Model):
    """A flow run on a cron expression (5 fields) in an IANA time zone.

    Runs start as ``created_by`` (who must still be an editor of the flow when a tick
    fires) on the flow's published version, else its newest. ``since`` is where ticking
    starts: creation, and every time the schedule is enabled or its timing changes, so a
    schedule switched back on does not catch up on the time it was off.
    """

    class Overlap(models.TextChoices):
        SKIP = "skip", "skip while the last run is going"
        ALLOW = "allow", "allow overlapping runs"

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="schedules")
    cron = models.CharField(max_length=200)
    timezone = models.CharField(max_length=64, default="UTC")
    inputs = models.JSONField(default=dict, blank=True)
    overlap = models.CharField(max_length=5, choices=Overlap.choices, default=Overlap.SKIP)
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)
    since = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["enabled"], name="schedules_enabled")]

    def __str__(self) -> str:
        return f"schedule {self.pk} of {self.flow_id} ({self.cron} {self.timezone})"


class Tick(models.Model):
    """What one fire time of a schedule did. At most one per (schedule, tick): the
    database refuses a second, and that refusal is how racing tickers agree."""

    class Outcome(models.TextChoices):
        STARTED = "started"
        SKIPPED_OVERLAP = "skipped_overlap", "skipped: the last run was still going"
        CATCH_UP = "catch_up", "catch-up"
        FAILED = "failed", "failed to start"

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="ticks")
    tick = models.DateTimeField()
    run = models.ForeignKey(Run, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    # A catch-up stands for this many earlier ticks that got no run.
    missed = models.PositiveIntegerField(default=0)
    reason = models.CharField(max_length=500, blank=True)
    recorded = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-tick"]
        constraints = [
            models.UniqueConstraint(fields=["schedule", "tick"], name="one_record_per_tick")
        ]
