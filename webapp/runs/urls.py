"""The run pages, grouped by prefix: /runs/, one run's /runs/<id>/..., and a flow's runs."""

from django.urls import include, path

from webapp import converters  # noqa: F401  (registers <identifier:>)
from webapp.runs import (
    approval_views,
    breakpoint_views,
    budget_views,
    compare_views,
    file_views,
    history_views,
    inbox_views,
    rerun_views,
    views,
)

run_urls = [
    path("", views.run_detail, name="run_detail"),
    path("compare-picker/", compare_views.compare_picker, name="run_compare_picker"),
    path("outputs/", views.run_outputs, name="run_outputs"),
    path("files/<int:file_id>/", file_views.run_file, name="run_file"),
    path("steps/", views.run_steps, name="run_steps"),
    path("replay/", views.run_replay, name="run_replay"),
    path("timeline/", views.run_timeline, name="run_timeline"),
    path("nodes/<identifier:node_id>/", views.node_detail, name="run_node"),
    path("rerun/", rerun_views.run_rerun, name="run_rerun"),
    path("rerun-from/<identifier:node_id>/", rerun_views.run_rerun_from, name="run_rerun_from"),
    path("resume/", rerun_views.run_resume, name="run_resume"),
    path("approvals/", approval_views.run_approvals, name="run_approvals"),
    path("budget/", budget_views.run_budget, name="run_budget"),
    path("approvals/<identifier:node_id>/", approval_views.run_approve, name="run_approve"),
    path("breakpoints/", breakpoint_views.run_breakpoints, name="run_breakpoints"),
    path(
        "breakpoints/<identifier:node_id>/",
        breakpoint_views.run_breakpoint,
        name="run_breakpoint",
    ),
]

flow_urls = [
    path("run-form/", views.run_form, name="run_form"),
    path("editor-runs/", breakpoint_views.editor_run, name="editor_run"),
    path("run-estimate/", views.run_estimate, name="run_estimate"),
    path("recent-runs/", views.recent_runs, name="recent_runs"),
    path("runs/", history_views.flow_runs, name="flow_runs"),
]

urlpatterns = [
    path("approvals/", inbox_views.approval_inbox, name="approval_inbox"),
    path("approvals/badge/", inbox_views.approval_badge, name="approval_badge"),
    path("runs/", history_views.run_history, name="run_history"),
    path("runs/compare/", compare_views.run_compare, name="run_compare"),
    path("runs/<int:run_id>/", include(run_urls)),
    path("flows/<int:flow_id>/", include(flow_urls)),
]
