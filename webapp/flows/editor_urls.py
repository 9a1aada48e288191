from django.urls import path

from webapp.flows.editor import views as editor_views

urlpatterns = [
    path("flows/<int:flow_id>/", editor_views.flow_editor, name="flow_editor"),
    path("flows/<int:flow_id>/node-form/", editor_views.node_form, name="flow_node_form"),
]
