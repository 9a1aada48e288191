"""The scale-out tests run under tests/scaleout/settings.py, on this session's own
PostgreSQL database and Redis database (tests/services.py)."""

from __future__ import annotations

import os

import pytest
from channels.layers import channel_layers
from django.conf import settings

from tests.services import session_database

SETTINGS = "tests.scaleout.settings"


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("DJANGO_SETTINGS_MODULE") != SETTINGS:
        raise pytest.UsageError(
            f"tests/scaleout run on PostgreSQL and Redis: pytest --ds {SETTINGS} tests/scaleout "
            "(scripts/test.sh does)"
        )


@pytest.fixture(scope="session")
def django_db_modify_db_settings(postgres_server: str) -> None:
    """Django's test database gets this session's name, so sessions never share one."""
    settings.DATABASES["default"].setdefault("TEST", {})["NAME"] = session_database()


@pytest.fixture(scope="session", autouse=True)
def session_services(postgres_url: str, redis_url: str) -> None:
    """This process talks to the session's Redis database, as its workers and servers do."""
    from webapp.celery import app

    settings.REDIS_URL = redis_url
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [redis_url]},
        }
    }
    channel_layers.backends.clear()
    app.conf.update(broker_url=redis_url, result_backend=redis_url)
