from __future__ import annotations

from django.conf import settings
from django.db import models


class ChatLink(models.Model):
    """A public chat with a flow's published version (else its newest): the page
    ``/c/<token>/`` and the widget that frames it on the ``allowed_origins``.

    The token is stored as made: it is meant to be in other sites' pages (the embed
    snippet), and editors see it again on the flow's chat page. Turns are started as
    ``created_by``, whose right to edit the flow is checked at each one.
    """

    flow = models.ForeignKey("flows.Flow", on_delete=models.CASCADE, related_name="chat_links")
    name = models.CharField(max_length=100)
    # URL-safe base64 of 32 random bytes (43 characters of [A-Za-z0-9_-]).
    token = models.CharField(max_length=64, unique=True)
    enabled = models.BooleanField(default=True)
    # Origins ("https://example.com", "http://127.0.0.1:8080") that may frame the page and
    # call it from their scripts; the page's own origin always may.
    allowed_origins = models.JSONField(default=list, blank=True)
    # Turns a minute, over every visitor of the link, and for any one visitor.
    per_minute = models.PositiveIntegerField(default=60)
    per_visitor_minute = models.PositiveIntegerField(default=10)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.flow})"


class Conversation(models.Model):
    """One conversation with a chat flow: an editor's in the chat panel (``owner``, no
    link), or an anonymous visitor's through a link (``link`` and ``visitor``, the key of
    their signed visitor token)."""

    flow = models.ForeignKey("flows.Flow", on_delete=models.CASCADE, related_name="conversations")
    link = models.ForeignKey(
        ChatLink, on_delete=models.CASCADE, null=True, blank=True, related_name="conversations"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="conversations",
    )
    visitor = models.CharField(max_length=64, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(owner__isnull=False, link__isnull=True, visitor="")
                | (models.Q(owner__isnull=True, link__isnull=False) & ~models.Q(visitor="")),
                name="conversation_of_owner_or_visitor",
            ),
        ]
        indexes = [models.Index(fields=["link", "visitor"], name="conversation_visitor")]


class ChatMessage(models.Model):
    """One message: the user's, or the reply, which links to the run that makes it and is
    filled in from the run's output once the run ends (``service.settle``)."""

    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    role = models.CharField(max_length=10, choices=Role.choices)
    content = models.TextField(blank=True)
    run = models.ForeignKey(
        "runs.Run", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # False while the reply's run has not ended.
    settled = models.BooleanField(default=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created", "id"]
        indexes = [models.Index(fields=["role", "created"], name="chat_message_recent")]
