"""The scale-out tests run under tests/scaleout/settings.py, on this session's own
PostgreSQL database and Redis database (tests/services.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from channels.layers import channel_layers
from django.conf import settings
from django.contrib.auth import get_user_model

from tests.fakes.anthropic_server import FakeAnthropic
from tests.services import NO_COMMIT_FLUSH, session_database
from tests.support.wait import wait_for
from webapp.execution import slots
from webapp.flows import services as flow_services
from webapp.runs.models import Run, RunEvent
from webapp.settings import redis_channel_layer

SETTINGS = "tests.scaleout.settings"


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("DJANGO_SETTINGS_MODULE") != SETTINGS:
        raise pytest.UsageError(
            f"tests/scaleout run on PostgreSQL and Redis: pytest --ds {SETTINGS} tests/scaleout "
            "(scripts/test.sh does)"
        )


@pytest.fixture(scope="session")
def django_db_modify_db_settings(postgres_server: str) -> None:
    """Django's test database gets this session's name, so sessions never share one; this
    process's connections commit without waiting for the disk (see without_commit_flush),
    from the migrations that build it on."""
    database = settings.DATABASES["default"]
    database.setdefault("TEST", {})["NAME"] = session_database()
    options = database.setdefault("OPTIONS", {})
    options["options"] = f"{options.get('options', '')} {NO_COMMIT_FLUSH}".strip()


@pytest.fixture(scope="session", autouse=True)
def session_services(postgres_url: str, redis_url: str) -> None:
    """This process talks to the session's Redis database, as its workers and servers do."""
    from webapp.celery import app

    settings.REDIS_URL = redis_url
    settings.CHANNEL_LAYERS = {"default": redis_channel_layer(redis_url)}
    channel_layers.backends.clear()
    app.conf.update(broker_url=redis_url, result_backend=redis_url)


@pytest.fixture(autouse=True)
def slot_listener() -> Iterator[None]:
    """This process's slot listener (webapp.execution.slots) ends with the test that
    started it: its connection must not outlive the test database."""
    yield
    slots.stop_listening()


@pytest.fixture
def model_server() -> Iterator[FakeAnthropic]:
    """The fake Messages API the workers call (``#fake:delay`` makes calls slow)."""
    with FakeAnthropic() as server:
        yield server


@pytest.fixture
def cluster(celery_worker, model_server: FakeAnthropic, service_env: dict[str, str]) -> Cluster:
    """Workers on the fake model server with short leases: ``cluster.workers(n)``."""
    return Cluster(celery_worker, model_server, service_env)


class Cluster:
    LEASE_S = 2.0

    def __init__(self, workers, model_server: FakeAnthropic, service_env: dict[str, str]):
        self.celery_worker = workers
        self.model_server = model_server
        self.env = {
            "ANTHROPIC_BASE_URL": model_server.url,
            "ANTHROPIC_API_KEY": "test-key",
            "SWITCHYARD_NODE_LEASE_S": str(self.LEASE_S),
            "SWITCHYARD_NODE_HEARTBEAT_S": "0.2",
        }
        self.service_env = {**service_env, **self.env}

    def workers(
        self,
        count: int = 1,
        *,
        pool: str = "solo",
        size: int = 1,
        loglevel: str = "INFO",
        **env: str,
    ):
        return self.celery_worker.many(
            count, pool=pool, size=size, env={**self.env, **env}, loglevel=loglevel
        )

    def start(self, graph: dict, inputs: dict | None = None, *, owner=None) -> Run:
        """A run of `graph` (as a new flow of alice's), handed to the broker."""
        from webapp.execution.distributed import CeleryDriver

        owner = owner or get_user_model().objects.get_or_create(username="alice")[0]
        flow = flow_services.create(owner, graph["graph"]["name"], graph)
        run = Run.objects.create(
            flow=flow, flow_version=flow.current(), started_by=owner, inputs=inputs or {}
        )
        assert CeleryDriver.send_begin(run.pk) is None
        return run

    def calls(self) -> list[str]:
        """The first line of the prompt of every model call the fake server saw, in order."""
        return [
            request["messages"][-1]["content"].splitlines()[0]
            if isinstance(request["messages"][-1]["content"], str)
            else request["messages"][-1]["content"][0]["text"].splitlines()[0]
            for request in self.model_server.message_requests
        ]


def finished(run: Run, timeout: float = 60) -> Run:
    """The run once it has finished (its row re-read)."""

    def done() -> Run | None:
        run.refresh_from_db()
        return run if run.finished else None

    return wait_for(done, timeout, message=f"run {run.pk} to finish")


def sound_log(run: Run) -> list[dict]:
    """The run's events, checked: seq 1..N without gaps, one node_finished per node visit."""
    recorded = RunEvent.objects.filter(run=run).order_by("seq")
    events = list(recorded.values_list("payload", flat=True))
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    visits = [(e["node"], e["iteration"]) for e in events if e["type"] == "node_finished"]
    assert len(visits) == len(set(visits)), f"a node visit finished twice: {visits}"
    assert [e["type"] for e in events].count("run_finished") == (1 if run.finished else 0)
    return events
