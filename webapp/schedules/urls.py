"""The Schedules pages of a flow: /flows/<flow_id>/schedules/..."""

from django.urls import path

from webapp.schedules import views

urlpatterns = [
    path("flows/<int:flow_id>/schedules/", views.schedule_list, name="flow_schedules"),
    path("flows/<int:flow_id>/schedules/new/", views.schedule_create, name="flow_schedule_create"),
    path(
        "flows/<int:flow_id>/schedules/<int:schedule_id>/",
        views.schedule_ticks,
        name="flow_schedule_ticks",
    ),
    path(
        "flows/<int:flow_id>/schedules/<int:schedule_id>/toggle/",
        views.schedule_toggle,
        name="flow_schedule_toggle",
    ),
    path(
        "flows/<int:flow_id>/schedules/<int:schedule_id>/delete/",
        views.schedule_delete,
        name="flow_schedule_delete",
    ),
]
