"""A credential: a named secret of a user's or of a team's, encrypted at rest.

The value is stored only as a MultiFernet token (``crypto``); nothing reads it but the
run that uses it (``service.run_credentials``) and the key rotation.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from graphs.credentials import DEFAULT_API_KEY_HEADER, KINDS


class Credential(models.Model):
    Kind = models.TextChoices("Kind", [(k, k) for k in KINDS])

    # Exactly one of the two: a personal credential, or a team's.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="credentials",
    )
    team = models.ForeignKey(
        "teams.Team", on_delete=models.CASCADE, null=True, blank=True, related_name="credentials"
    )
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    # An api_key's header (not secret); the other kinds ignore it.
    header = models.CharField(max_length=100, default=DEFAULT_API_KEY_HEADER)
    encrypted = models.TextField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(owner__isnull=True, team__isnull=False)
                | Q(owner__isnull=False, team__isnull=True),
                name="credential_owner_or_team",
            ),
            models.UniqueConstraint(
                fields=["owner", "name"],
                condition=Q(team__isnull=True),
                name="one_credential_name_per_user",
            ),
            models.UniqueConstraint(
                fields=["team", "name"],
                condition=Q(owner__isnull=True),
                name="one_credential_name_per_team",
            ),
        ]

    def __str__(self) -> str:  # never the value
        return f"{self.name} ({self.kind})"
