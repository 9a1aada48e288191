from django.urls import include, path

from webapp.flows import views

urlpatterns = [
    path("", views.flow_list, name="flow_list"),
    path("flows/new/", views.flow_new, name="flow_new"),
    path("flows/<int:flow_id>/duplicate/", views.flow_duplicate, name="flow_duplicate"),
    path("flows/<int:flow_id>/delete/", views.flow_delete, name="flow_delete"),
    path("", include("webapp.flows.editor_urls")),
    path("", include("webapp.flows.version_urls")),
    path("", include("webapp.flows.collab_urls")),
]
