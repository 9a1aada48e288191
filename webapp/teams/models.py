"""Teams (workspaces) and their members' roles. Every user also has a personal space:
the flows they own with no team."""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models


class Role(models.TextChoices):
    """Ordered: each role can do everything the ones before it can."""

    VIEWER = "viewer"
    EDITOR = "editor"
    OWNER = "owner"

    @classmethod
    def rank(cls, role: str | None) -> int:
        return {None: 0, cls.VIEWER: 1, cls.EDITOR: 2, cls.OWNER: 3}[role]

    @classmethod
    def at_least(cls, role: str) -> list[str]:
        """The roles that include `role`'s rights."""
        return [r for r in cls.values if cls.rank(r) >= cls.rank(role)]


class Team(models.Model):
    name = models.CharField(max_length=100)
    created = models.DateTimeField(auto_now_add=True)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="teams"
    )

    class Meta:
        ordering = ["name", "pk"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.EDITOR)
    joined = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "user"], name="one_membership_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"


def hash_secret(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class Invite(models.Model):
    """An invitation to a team: for a named user or e-mail, or anyone holding the link.

    Only the token's hash is stored; the link is shown once, when it is made. A personal
    invitation keeps what the owner typed (``invitee``) and shows only that: when it found
    no account that can take it, ``user`` is empty and it reaches nobody, which the team's
    owners cannot tell apart from one that is still waiting.
    """

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="invites")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.EDITOR)
    # Both empty for a link anyone may use (until it expires or is revoked).
    invitee = models.CharField(max_length=254, blank=True)
    email = models.EmailField(blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="invites",
    )
    digest = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)
    expires = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    @classmethod
    def new_token(cls) -> tuple[str, str]:
        """A fresh (raw token, digest) pair."""
        raw = secrets.token_urlsafe(32)
        return raw, hash_secret(raw)
