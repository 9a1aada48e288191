"""An MCP server a user or a team registered, whose tools their agents may call.

Not the app's own MCP server (``webapp.mcp``, which offers published flows to others): these
are other people's servers, reached over Streamable HTTP (``graphs.tools.mcp``). ``tools``
holds what the last refresh listed (name, description, input schema), capped in size;
``auth`` names a credential of the same owner (``webapp.credentials``), never a value.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from graphs.net import MAX_URL_CHARS


class McpServer(models.Model):
    # Exactly one of the two: a personal server, or a team's (as a credential).
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="mcp_servers",
    )
    team = models.ForeignKey(
        "teams.Team", on_delete=models.CASCADE, null=True, blank=True, related_name="mcp_servers"
    )
    name = models.CharField(max_length=40)
    url = models.CharField(max_length=MAX_URL_CHARS)
    # A credential's name (blank: none), looked up among the same owner's when called.
    auth = models.CharField(max_length=100, blank=True, default="")
    tools = models.JSONField(default=list, blank=True)
    refreshed = models.DateTimeField(null=True, blank=True)
    # Why the last refresh failed ("" when it worked); the tools listed before are kept.
    refresh_error = models.TextField(blank=True, default="")
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
                name="mcp_server_owner_or_team",
            ),
            models.UniqueConstraint(
                fields=["owner", "name"],
                condition=Q(team__isnull=True),
                name="one_mcp_server_name_per_user",
            ),
            models.UniqueConstraint(
                fields=["team", "name"],
                condition=Q(owner__isnull=True),
                name="one_mcp_server_name_per_team",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.url})"
