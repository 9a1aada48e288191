from django.urls import include, path

urlpatterns = [
    path("", include("webapp.flows.urls")),
    path("", include("webapp.runs.urls")),
    path("", include("webapp.accounts.urls")),
    path("", include("webapp.teams.urls")),
    path("", include("webapp.flows.share_urls")),
    path("api/", include("webapp.api_urls")),
]
