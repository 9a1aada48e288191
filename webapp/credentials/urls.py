from django.urls import path

from webapp.credentials import views

urlpatterns = [
    path("settings/credentials/", views.credential_list, name="credential_list"),
    path("settings/credentials/new/", views.credential_create, name="credential_create"),
    path(
        "settings/credentials/<int:credential_id>/delete/",
        views.credential_delete,
        name="credential_delete",
    ),
]
