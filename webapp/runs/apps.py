from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "webapp.runs"
    label = "runs"

    def ready(self) -> None:
        # Connects the receivers that give storage back when runs are deleted.
        from webapp.runs import signals  # noqa: F401
