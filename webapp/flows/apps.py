from django.apps import AppConfig


class FlowsConfig(AppConfig):
    name = "webapp.flows"
    label = "flows"
