from django.urls import path

from webapp.flows.public import views as public_views
from webapp.flows.sharing import views as share_views

urlpatterns = [
    path("flows/<int:flow_id>/share/", share_views.flow_share, name="flow_share"),
    path("flows/<int:flow_id>/shares/", share_views.share_create, name="flow_share_create"),
    path(
        "flows/<int:flow_id>/shares/<int:share_id>/",
        share_views.share_update,
        name="flow_share_update",
    ),
    path(
        "flows/<int:flow_id>/shares/<int:share_id>/remove/",
        share_views.share_remove,
        name="flow_share_remove",
    ),
    path("shares/<int:share_id>/accept/", share_views.share_accept, name="share_accept"),
    path("shares/<int:share_id>/decline/", share_views.share_decline, name="share_decline"),
    path("flows/<int:flow_id>/transfer/", share_views.flow_transfer, name="flow_transfer"),
    path("flows/<int:flow_id>/share-links/", share_views.link_create, name="flow_link_create"),
    path(
        "flows/<int:flow_id>/share-links/<int:link_id>/revoke/",
        share_views.link_revoke,
        name="flow_link_revoke",
    ),
    path("runs/<int:run_id>/share-link/", share_views.run_link, name="run_share_link"),
    # Public: no login. Every URL 404s once the link is revoked or expired.
    path("s/<str:token>/", public_views.public_share, name="public_share"),
    path("s/<str:token>/runs/<int:run_id>/", public_views.public_run, name="public_run"),
    path(
        "s/<str:token>/runs/<int:run_id>/events",
        public_views.public_run_events,
        name="public_run_events",
    ),
]
