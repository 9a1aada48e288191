from __future__ import annotations

from django.conf import settings
from django.db import models


class Flow(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="flows"
    )
    # A flow with a team belongs to the team (its members' roles apply; `owner` is who made
    # it); without one it is in its owner's personal space.
    team = models.ForeignKey(
        "teams.Team", on_delete=models.CASCADE, null=True, blank=True, related_name="flows"
    )
    name = models.CharField(max_length=200)
    # The number of the newest FlowVersion; saves compare-and-set it (see services.save).
    version = models.PositiveIntegerField(default=0)
    # What runs from outside the editor (the API, and later webhooks, schedules, chat, MCP)
    # run when they name no version; None: the newest. Saving never changes it; publishing
    # does (webapp.flows.versions.service.publish), and each change is a Publication.
    published = models.ForeignKey(
        "FlowVersion", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)
    # A cost budget in US dollars for each of its runs, unless a run names its own; None:
    # no budget (webapp.runs.budgets).
    budget_usd = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)

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
    # Why this version cannot run yet, as the engine said when it was saved (a list of
    # ``{message, node, edge, text}``): unfinished work is saved, then refused a run or
    # a publication (webapp.flows.services).
    problems = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["flow", "number"], name="one_version_per_number"),
        ]

    def __str__(self) -> str:
        return f"{self.flow} v{self.number}"


class Publication(models.Model):
    """One change of a flow's published version: ``version`` None when it was unpublished."""

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="publications")
    version = models.ForeignKey(
        FlowVersion, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at", "-id"]


class FlowShare(models.Model):
    """A flow shared with one person or with every member of a team.

    A share with a person waits for them to accept it (``accepted_at``) and gives nothing
    until then. ``invitee`` is what the owner typed, a username or an e-mail: the owner
    sees that, never the account it found, until the person accepts. When it found no
    account (or several) ``user`` is empty and the share reaches nobody, which the owner
    cannot tell apart from one that has not been answered. A share with a team needs no
    acceptance: only a member may make it.
    """

    class Role(models.TextChoices):
        VIEWER = "viewer"
        EDITOR = "editor"

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="shares")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="flow_shares",
    )
    team = models.ForeignKey(
        "teams.Team", on_delete=models.CASCADE, null=True, blank=True, related_name="flow_shares"
    )
    invitee = models.CharField(max_length=254, blank=True)
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)
    accepted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                # A person (by what was typed; accepted only with an account found) or a team.
                condition=(
                    models.Q(team__isnull=True)
                    & ~models.Q(invitee="")
                    & (models.Q(user__isnull=False) | models.Q(accepted_at__isnull=True))
                )
                | models.Q(user__isnull=True, team__isnull=False, invitee=""),
                name="share_with_person_or_team",
            ),
            models.UniqueConstraint(
                fields=["flow", "user"],
                condition=models.Q(accepted_at__isnull=False, user__isnull=False),
                name="one_accepted_share_per_user",
            ),
            models.UniqueConstraint(
                fields=["flow", "invitee"],
                condition=~models.Q(invitee=""),
                name="one_share_per_invitee",
            ),
            models.UniqueConstraint(fields=["flow", "team"], name="one_share_per_team"),
        ]

    @property
    def pending(self) -> bool:
        return self.team_id is None and self.accepted_at is None

    @property
    def shown_name(self) -> str:
        """Who the share is with, as its owner sees it: a pending share by what they typed."""
        if self.team_id is not None:
            return self.team.name
        return self.invitee if self.pending else self.user.username


class ShareLink(models.Model):
    """A read-only link to a flow, or to one run of it, for people without an account.

    Only the token's hash is stored. Revoking or expiry makes the link a 404.
    """

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="share_links")
    run = models.ForeignKey(
        "runs.Run", on_delete=models.CASCADE, null=True, blank=True, related_name="share_links"
    )
    digest = models.CharField(max_length=64, unique=True)
    hint = models.CharField(max_length=12)
    hide_io = models.BooleanField(
        default=False, help_text="Hide run inputs and outputs from people using the link."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)
    expires = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]


class Presence(models.Model):
    """One open flow socket: who has the flow open, through which channel (see collab/presence.py).

    A row lives as long as its socket; the socket's heartbeat keeps ``seen`` fresh, so
    rows of a server process that died unannounced expire on their own.
    """

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="presences")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    role = models.CharField(max_length=10)
    channel_name = models.CharField(max_length=200, unique=True)
    joined = models.DateTimeField(auto_now_add=True)
    seen = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["flow", "seen"], name="presence_flow_seen")]


class Webhook(models.Model):
    """A URL that starts runs of a flow when a caller POSTs to it, signed with ``secret``
    (webapp/flows/webhooks/). The token in the URL finds the hook; the signature proves the
    caller holds the secret, which is shown once, when made or rotated.

    ``input_map`` renames: {flow input: field of the JSON body}; inputs it does not name
    take the body's field of the same name.
    """

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="webhooks")
    name = models.CharField(max_length=100)
    # URL-safe base64 of 32 random bytes (43 characters of [A-Za-z0-9_-]).
    token = models.CharField(max_length=64, unique=True)
    # The HMAC key: it must be read to check each signature, so it is stored as given;
    # no page or answer shows it again after it is made.
    secret = models.CharField(max_length=100)
    enabled = models.BooleanField(default=True)
    input_map = models.JSONField(default=dict, blank=True)
    per_minute = models.PositiveIntegerField(default=60)
    # Whose runs the hook starts: they must still be able to edit the flow.
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)
    rotated = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.flow})"


class WebhookDelivery(models.Model):
    """One request to a hook's URL: what was answered, and the run it started, if any."""

    hook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    at = models.DateTimeField(auto_now_add=True)
    status = models.PositiveSmallIntegerField()
    # Why it was refused, in words (never the body or the signature).
    detail = models.CharField(max_length=300, blank=True)
    run = models.ForeignKey(
        "runs.Run", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["hook", "-at"])]
