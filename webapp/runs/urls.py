from django.urls import path

from webapp.runs import views

urlpatterns = [
    path("flows/<int:flow_id>/run-form/", views.run_form, name="run_form"),
    path("flows/<int:flow_id>/recent-runs/", views.recent_runs, name="recent_runs"),
    path("runs/<int:run_id>/", views.run_detail, name="run_detail"),
    path("runs/<int:run_id>/outputs/", views.run_outputs, name="run_outputs"),
    path("runs/<int:run_id>/steps/", views.run_steps, name="run_steps"),
    path("runs/<int:run_id>/nodes/<path:node_id>/", views.node_detail, name="run_node"),
]
