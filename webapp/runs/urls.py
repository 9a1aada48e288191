from django.urls import path

from webapp import converters  # noqa: F401  (registers <identifier:>)
from webapp.runs import compare_views, history_views, rerun_views, views

urlpatterns = [
    path("flows/<int:flow_id>/run-form/", views.run_form, name="run_form"),
    path("flows/<int:flow_id>/recent-runs/", views.recent_runs, name="recent_runs"),
    path("runs/", history_views.run_history, name="run_history"),
    path("flows/<int:flow_id>/runs/", history_views.flow_runs, name="flow_runs"),
    path("runs/compare/", compare_views.run_compare, name="run_compare"),
    path("runs/<int:run_id>/", views.run_detail, name="run_detail"),
    path(
        "runs/<int:run_id>/compare-picker/",
        compare_views.compare_picker,
        name="run_compare_picker",
    ),
    path("runs/<int:run_id>/outputs/", views.run_outputs, name="run_outputs"),
    path("runs/<int:run_id>/steps/", views.run_steps, name="run_steps"),
    path("runs/<int:run_id>/replay/", views.run_replay, name="run_replay"),
    path("runs/<int:run_id>/timeline/", views.run_timeline, name="run_timeline"),
    path("runs/<int:run_id>/nodes/<identifier:node_id>/", views.node_detail, name="run_node"),
    path("runs/<int:run_id>/rerun/", rerun_views.run_rerun, name="run_rerun"),
    path(
        "runs/<int:run_id>/rerun-from/<identifier:node_id>/",
        rerun_views.run_rerun_from,
        name="run_rerun_from",
    ),
    path("runs/<int:run_id>/resume/", rerun_views.run_resume, name="run_resume"),
]
