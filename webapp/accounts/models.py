from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models

TOKEN_PREFIX = "sy_"  # noqa: S105 - a prefix, not a secret


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiToken(models.Model):
    """A bearer token for the API and websockets. Only its hash is stored."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    digest = models.CharField(max_length=64, unique=True)
    hint = models.CharField(max_length=12, help_text="The first characters, to recognise it.")
    created = models.DateTimeField(auto_now_add=True)
    last_used = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.name} ({self.hint}…)"

    @classmethod
    def issue(cls, user, name: str) -> tuple[ApiToken, str]:
        """Create a token; the raw value is returned once and never stored."""
        raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = cls.objects.create(user=user, name=name, digest=hash_token(raw), hint=raw[:10])
        return token, raw


class SignInFailures(models.Model):
    """Failed sign-ins counted for one account name or one client address (throttle.py).

    An account's key is a hash of the name typed, never the name itself: people type
    passwords into the username box.
    """

    class Scope(models.TextChoices):
        ACCOUNT = "account"
        ADDRESS = "address"

    scope = models.CharField(max_length=10, choices=Scope.choices)
    key = models.CharField(max_length=64)
    failures = models.PositiveIntegerField(default=0)
    window_start = models.DateTimeField()
    last_failure = models.DateTimeField()
    locked_until = models.DateTimeField(null=True, blank=True)
    # Locks in a row: each one lasts twice as long as the one before.
    lockouts = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scope", "key"], name="one_failure_count_per_key")
        ]
        indexes = [models.Index(fields=["last_failure"], name="signin_failures_last")]

    def __str__(self) -> str:
        return f"{self.scope} {self.key}: {self.failures}"
