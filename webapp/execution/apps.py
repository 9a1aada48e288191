from django.apps import AppConfig


class ExecutionConfig(AppConfig):
    name = "webapp.execution"
    label = "execution"
