from django.apps import AppConfig


class SchedulesConfig(AppConfig):
    name = "webapp.schedules"
    label = "schedules"
