from django.urls import path

from webapp.mcpservers import views

urlpatterns = [
    path("settings/mcp-servers/", views.mcp_server_list, name="mcp_server_list"),
    path("settings/mcp-servers/new/", views.mcp_server_create, name="mcp_server_create"),
    path(
        "settings/mcp-servers/<int:server_id>/refresh/",
        views.mcp_server_refresh,
        name="mcp_server_refresh",
    ),
    path(
        "settings/mcp-servers/<int:server_id>/delete/",
        views.mcp_server_delete,
        name="mcp_server_delete",
    ),
]
