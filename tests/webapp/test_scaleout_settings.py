"""Choosing the celery driver: what it needs is checked when the settings load, loudly."""

from __future__ import annotations

import io
import runpy
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command

from webapp import env
from webapp.flows import services
from webapp.runs.models import Run

SETTINGS = Path(__file__).parents[2] / "webapp" / "settings.py"
POSTGRES = "postgres://app:secret@db.internal:5432/switchyard"
REDIS = "redis://redis.internal:6379/0"


@pytest.fixture
def load(monkeypatch):
    """The settings module as it loads under `environment` (the rest of it cleared)."""

    def load(**environment: str) -> dict:
        for name in (
            "SWITCHYARD_RUN_DRIVER",
            "DATABASE_URL",
            "REDIS_URL",
            "CELERY_BROKER_URL",
            "CELERY_RESULT_BACKEND",
            "CELERY_VISIBILITY_TIMEOUT",
        ):
            monkeypatch.delenv(name, raising=False)
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        return runpy.run_path(str(SETTINGS))

    return load


def test_the_embedded_default_is_unchanged(load):
    settings = load()
    assert settings["RUN_DRIVER"] == "webapp.execution.inprocess.InProcessDriver"
    assert settings["DATABASES"]["default"]["ENGINE"] == "webapp.sqlite"  # Django's, plus a lock
    assert settings["CHANNEL_LAYERS"]["default"]["BACKEND"].endswith("InMemoryChannelLayer")
    assert settings["CELERY_BROKER_URL"] is None


def test_the_celery_driver_on_postgresql_and_redis(load):
    settings = load(SWITCHYARD_RUN_DRIVER="celery", DATABASE_URL=POSTGRES, REDIS_URL=REDIS)
    assert settings["RUN_DRIVER"] == "webapp.execution.distributed.CeleryDriver"
    assert settings["CELERY_BROKER_URL"] == REDIS
    [host] = settings["CHANNEL_LAYERS"]["default"]["CONFIG"]["hosts"]
    # Longer than channels_redis' 5 s blocking read, or every idle socket breaks (redis-py 8).
    assert host["address"] == REDIS and host["socket_timeout"] > 5
    # A frozen worker's session is ended inside half a lease (and never before 5 s).
    assert settings["DATABASES"]["default"]["OPTIONS"]["options"] == (
        "-c idle_in_transaction_session_timeout=15000"
    )
    # At-least-once, one task at a time per worker process.
    # Acknowledged on receipt: leases and the sweeper, not redelivery, bring work back.
    assert settings["CELERY_TASK_ACKS_LATE"] is False
    # A message is taken only by a worker with a free thread for it.
    assert settings["CELERY_WORKER_DISABLE_PREFETCH"] is True
    assert settings["CELERY_WORKER_PREFETCH_MULTIPLIER"] == 1
    assert settings["CELERY_BROKER_TRANSPORT_OPTIONS"] == {"visibility_timeout": 3600}


def test_a_broker_of_its_own_and_the_visibility_timeout(load):
    settings = load(
        SWITCHYARD_RUN_DRIVER="celery",
        DATABASE_URL=POSTGRES,
        REDIS_URL=REDIS,
        CELERY_BROKER_URL="amqp://rabbit.internal//",
        CELERY_VISIBILITY_TIMEOUT="600",
    )
    assert settings["CELERY_BROKER_URL"] == "amqp://rabbit.internal//"
    assert settings["CELERY_BROKER_TRANSPORT_OPTIONS"] == {"visibility_timeout": 600}


def test_the_celery_driver_needs_a_broker(load):
    with pytest.raises(ImproperlyConfigured, match="needs a broker: set REDIS_URL"):
        load(SWITCHYARD_RUN_DRIVER="celery", DATABASE_URL=POSTGRES)


def test_the_celery_driver_needs_the_redis_channel_layer(load):
    with pytest.raises(ImproperlyConfigured, match="needs REDIS_URL: events from workers"):
        load(
            SWITCHYARD_RUN_DRIVER="celery",
            DATABASE_URL=POSTGRES,
            CELERY_BROKER_URL="amqp://rabbit.internal//",
        )


def test_the_celery_driver_needs_postgresql(load):
    with pytest.raises(ImproperlyConfigured, match="needs PostgreSQL") as refused:
        load(SWITCHYARD_RUN_DRIVER="celery", REDIS_URL=REDIS)
    assert "SQLite is a file on one machine, which workers on other machines cannot share" in str(
        refused.value
    )


def test_an_unknown_driver_is_refused(load):
    with pytest.raises(ImproperlyConfigured, match="one of inprocess, celery, got 'kafka'"):
        load(SWITCHYARD_RUN_DRIVER="kafka")


def test_a_url_with_the_wrong_scheme_is_refused_without_echoing_it(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "http://user:hunter2@redis.internal")
    with pytest.raises(ImproperlyConfigured) as refused:
        env.optional_url("REDIS_URL", ("redis", "rediss"))
    assert str(refused.value) == "REDIS_URL must start with redis://, rediss://, got http://..."
    monkeypatch.setenv("REDIS_URL", "hunter2@redis.internal:6379")
    with pytest.raises(ImproperlyConfigured, match=r"got no scheme$"):
        env.optional_url("REDIS_URL", ("redis",))
    monkeypatch.setenv("REDIS_URL", " ")
    assert env.optional_url("REDIS_URL", ("redis",)) is None


@pytest.mark.django_db
def test_recover_runs_leaves_the_runs_of_workers_alone(alice, settings):
    settings.RUN_DRIVER = "webapp.execution.distributed.CeleryDriver"
    flow = services.create(alice, "Chain", services.starter_graph("Chain"))
    run = Run.objects.create(
        flow=flow, flow_version=flow.current(), started_by=alice, status=Run.Status.RUNNING
    )
    out = io.StringIO()
    call_command("recover_runs", stdout=out)
    assert out.getvalue() == "skipped: runs of the celery driver outlive the server\n"
    run.refresh_from_db()
    assert run.status == Run.Status.RUNNING
