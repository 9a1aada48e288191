from django.urls import path

from webapp.flows.transfer import views as transfer_views
from webapp.flows.versions import views as version_views

urlpatterns = [
    path("flows/<int:flow_id>/versions/", version_views.version_list, name="flow_versions"),
    path("flows/<int:flow_id>/versions/diff/", version_views.version_diff, name="flow_diff"),
    path(
        "flows/<int:flow_id>/versions/latest/",
        version_views.version_meta,
        name="flow_version_meta",
    ),
    path(
        "flows/<int:flow_id>/versions/<int:number>/",
        version_views.version_detail,
        name="flow_version",
    ),
    path(
        "flows/<int:flow_id>/versions/<int:number>/restore/",
        version_views.version_restore,
        name="flow_restore",
    ),
    path("flows/<int:flow_id>/export/", transfer_views.flow_export, name="flow_export"),
    path("flows/import/", transfer_views.flow_import, name="flow_import"),
    path(
        "flows/<int:flow_id>/import/",
        transfer_views.flow_import_version,
        name="flow_import_version",
    ),
]
