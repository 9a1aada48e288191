from django.apps import AppConfig


class FlowsConfig(AppConfig):
    name = "webapp.flows"
    label = "flows"

    def ready(self) -> None:
        # Connects the receivers that close sockets whose access went (see signals.py).
        from webapp.flows import signals  # noqa: F401
