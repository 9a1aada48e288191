from __future__ import annotations

from django.conf import settings
from django.db import models

from webapp.flows.models import Flow, FlowVersion


class Run(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="runs")
    # Pinned at start: later saves of the flow never change what this run ran. Versions are
    # only ever deleted together with their flow, and its runs go with it.
    flow_version = models.ForeignKey(FlowVersion, on_delete=models.CASCADE, related_name="runs")
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True)
    inputs = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    outputs = models.JSONField(default=dict)
    error = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    last_seq = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["flow", "-created"]), models.Index(fields=["status"])]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.flow_id} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def usage(self) -> dict[str, int]:
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens}


class RunEvent(models.Model):
    """One engine event of a run; `payload` is the event exactly as the engine emitted it."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveIntegerField()
    type = models.CharField(max_length=32)
    payload = models.JSONField()

    class Meta:
        ordering = ["seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="one_event_per_seq")]
