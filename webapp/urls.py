from django.urls import include, path

urlpatterns = [
    path("", include("webapp.flows.urls")),
    path("", include("webapp.runs.urls")),
    path("", include("webapp.accounts.urls")),
    path("api/", include("webapp.api_urls")),
]
