"""Celery tasks of the runs app (executed by ``celery -A webapp worker``)."""

from __future__ import annotations

import os
import socket

from django.db import connection

from webapp.celery import app


@app.task
def ping() -> dict[str, str | int]:
    """Where a task ran and which database it sees: proves a worker's wiring end to end."""
    # A query, not just the settings: the worker must actually reach the database.
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return {
        "hostname": ping.request.hostname or socket.gethostname(),
        "pid": os.getpid(),
        "vendor": connection.vendor,
        "database": connection.settings_dict["NAME"],
    }
