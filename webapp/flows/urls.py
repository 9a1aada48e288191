from django.urls import include, path

from webapp.flows import views

urlpatterns = [
    path("", views.flow_list, name="flow_list"),
    path("", include("webapp.flows.editor_urls")),
]
