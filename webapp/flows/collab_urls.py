from django.urls import path

from webapp.flows.collab import views as collab_views

urlpatterns = [
    path(
        "flows/<int:flow_id>/collab/saved/<int:number>/",
        collab_views.collab_saved,
        name="flow_collab_saved",
    ),
    path("flows/<int:flow_id>/collab/diff/", collab_views.collab_diff, name="flow_collab_diff"),
    path("flows/<int:flow_id>/collab/copy/", collab_views.collab_copy, name="flow_collab_copy"),
]
