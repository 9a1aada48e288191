"""The Celery app the celery run driver sends work to: ``celery -A webapp worker``.

Every setting comes from Django's, under the ``CELERY_`` prefix (webapp/settings.py reads
them from the environment), so a worker and the web processes always agree on them.
"""

import os

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

app = Celery("webapp")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Each Django app's tasks module, imported when the worker starts.
app.autodiscover_tasks()


@worker_init.connect
def _require_the_celery_driver(**_) -> None:
    # Without it a worker has no broker setting and would retry Celery's default,
    # amqp://localhost, forever; with it the settings have checked broker and database.
    from django.conf import settings

    if settings.RUN_DRIVERS["celery"] != settings.RUN_DRIVER:
        # SystemExit: Celery logs any Exception a signal handler raises, and carries on.
        raise SystemExit(
            "a worker needs SWITCHYARD_RUN_DRIVER=celery, like the web processes it serves"
        )
