"""Settings of the scale-out tests: the web app as the celery driver runs it, on PostgreSQL
and Redis. Run them with ``pytest --ds tests.scaleout.settings tests/scaleout`` (as
scripts/test.sh does).

The URLs here only choose the engines: the session's own database and Redis database are
made by tests/services.py, and tests/scaleout/conftest.py points these settings at them.
"""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
os.environ["SWITCHYARD_RUN_DRIVER"] = "celery"

from webapp.settings import *  # noqa: F403
