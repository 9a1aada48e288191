from __future__ import annotations

from django.conf import settings
from django.db import models


class Flow(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="flows"
    )
    name = models.CharField(max_length=200)
    # The number of the newest FlowVersion; saves compare-and-set it (see services.save).
    version = models.PositiveIntegerField(default=0)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated"]

    def __str__(self) -> str:
        return self.name

    def current(self) -> FlowVersion:
        return self.versions.get(number=self.version)


class FlowVersion(models.Model):
    """One saved state of a flow. Never changed once written."""

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    graph = models.JSONField()
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True)
    message = models.CharField(max_length=500, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["flow", "number"], name="one_version_per_number"),
        ]

    def __str__(self) -> str:
        return f"{self.flow} v{self.number}"
