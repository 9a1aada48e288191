"""Each app's pages, included from its one URL module (grouped by prefix inside it)."""

from django.urls import include, path

urlpatterns = [
    # /, /flows/..., /shares/..., /s/<token>/... and a run's share link.
    path("", include("webapp.flows.urls")),
    # /runs/... and a flow's runs (/flows/<id>/runs/, run-form/, recent-runs/).
    path("", include("webapp.runs.urls")),
    # /login/, /logout/, /signup/, /settings/...
    path("", include("webapp.accounts.urls")),
    # /teams/..., /invitations/..., /invites/<token>/
    path("", include("webapp.teams.urls")),
    # /c/<token>/... (a chat link, no login), /c/embed.js, and the editor's chat panel.
    path("", include("webapp.chat.urls")),
    # /flows/<id>/schedules/...
    path("", include("webapp.schedules.urls")),
    # /settings/credentials/...
    path("", include("webapp.credentials.urls")),
    # /settings/mcp-servers/...
    path("", include("webapp.mcpservers.urls")),
    path("api/", include("webapp.api_urls")),
]
