"""Real PostgreSQL, Redis, Celery workers and Daphne processes for the tests that need them.

Servers: the ones on 127.0.0.1 when they answer (PostgreSQL on 5432, user ``postgres``
with trust authentication; Redis on 6379), else started here from Debian's packages
(scripts/test.sh installs them when missing). A server started here is left running for
the next session. Each session gets a PostgreSQL database and a Redis database number of
its own, so test runs side by side (or a developer's own data) never meet. Under
pytest-xdist every worker process is such a session (both are keyed by its pid), with its
own Celery workers (named after that pid) and Daphne ports.

Fixtures: ``postgres_url`` and ``redis_url`` (the session's own), ``service_env`` (the
environment a worker or web process of this session runs with), ``celery_worker`` (starts
real ``celery -A webapp worker`` processes) and ``celery_server`` (Daphne with the celery
driver and ``channels_redis``). Processes see only committed rows, so the process fixtures
bring ``transactional_db`` with them.

``DaphneServer`` also serves tests/e2e and the Daphne edge tests, each on a SQLite file of
its own: ``server.orm(build)`` runs ``build`` with this process's ORM on the server's
database, which is how those tests make their users, flows and runs and read what the
server stored. Every process started here is stopped within bounded time at teardown
(SIGTERM, then SIGKILL), and dies with the session if the session dies first.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

import dj_database_url
import psycopg
import pytest
import redis
from django.conf import global_settings, settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.utils import load_backend
from django.test import override_settings

from tests.support.wait import wait_for

ROOT = Path(__file__).parents[1]
PASSWORD = "correct horse battery"
HOST = "127.0.0.1"
POSTGRES_PORT = 5432
REDIS_PORT = 6379
POSTGRES_ADMIN_URL = f"postgres://postgres@{HOST}:{POSTGRES_PORT}/postgres"
# Every database a session creates starts with one of these, then the owner's pid.
DATABASE_PREFIXES = ("test_switchyard_", "switchyard_test_")
# Marks a Redis database as taken by a session (value: "host:pid").
REDIS_OWNER_KEY = "switchyard:test-session-owner"
T = TypeVar("T")
# Sessions starting at once must not both start a server.
SERVICES_LOCK = Path(tempfile.gettempdir()) / "switchyard-test-services.lock"


# Servers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def answers(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=0.5).close()
    except OSError:
        return False
    return True


def wait_for_port(port: int, what: str, timeout: float = 30) -> None:
    wait_for(lambda: answers(port), timeout, 0.1, f"{what} to listen on {HOST}:{port}")


@contextlib.contextmanager
def services_lock() -> Iterator[None]:
    with open(SERVICES_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def start(command: list[str], what: str) -> None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise RuntimeError(
            f"{what} is not installed and nothing answers on 127.0.0.1: scripts/test.sh "
            "installs it from Debian's packages"
        ) from None
    # A server another session started meanwhile makes this fail; the port decides.
    if done.returncode != 0:
        sys.stderr.write(f"{' '.join(command)}: {done.stdout}{done.stderr}")


def ensure_postgres() -> str:
    """The admin URL of a PostgreSQL server on 127.0.0.1, started first if none answers."""
    with services_lock():
        if not answers(POSTGRES_PORT):
            versions = Path("/etc/postgresql")
            clusters = sorted(os.listdir(versions), key=int) if versions.is_dir() else []
            if not clusters:
                raise RuntimeError(
                    "PostgreSQL is not installed and nothing answers on 127.0.0.1:5432: "
                    "scripts/test.sh installs it (Debian's postgresql package)"
                )
            command = ["pg_ctlcluster", "--skip-systemctl-redirect", clusters[-1], "main", "start"]
            start(command, "PostgreSQL")
            wait_for_port(POSTGRES_PORT, "PostgreSQL")
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=10):
            pass
    except psycopg.OperationalError as exc:
        raise RuntimeError(
            f"PostgreSQL on 127.0.0.1:5432 refused {POSTGRES_ADMIN_URL}: the tests need user "
            f"postgres with trust authentication on loopback (pg_hba.conf)\n{exc}"
        ) from None
    return POSTGRES_ADMIN_URL


def ensure_redis() -> None:
    """A Redis server on 127.0.0.1:6379, started first if none answers."""
    with services_lock():
        if not answers(REDIS_PORT):
            command = [
                "redis-server",
                "--daemonize", "yes",
                "--bind", HOST,
                "--port", str(REDIS_PORT),
                # Test data only: nothing to keep across restarts.
                "--save", "",
                "--appendonly", "no",
            ]  # fmt: skip
            start(command, "Redis")
            wait_for_port(REDIS_PORT, "Redis")
    redis.Redis(host=HOST, port=REDIS_PORT).ping()


# Per-session PostgreSQL databases


@cache
def session_database() -> str:
    """The name of this session's PostgreSQL database (Django's test database under
    PostgreSQL settings, see tests/scaleout/conftest.py)."""
    return f"{DATABASE_PREFIXES[0]}{os.getpid()}_{secrets.token_hex(3)}"


def database_url(name: str) -> str:
    return f"postgres://postgres@{HOST}:{POSTGRES_PORT}/{name}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def drop_stale_databases(admin_url: str) -> None:
    """Drop the databases of sessions that died before they could (their pid is gone)."""
    with psycopg.connect(admin_url, autocommit=True) as admin:
        names = [row[0] for row in admin.execute("SELECT datname FROM pg_database")]
        for name in names:
            prefix = next((p for p in DATABASE_PREFIXES if name.startswith(p)), None)
            pid = name[len(prefix) :].split("_")[0] if prefix else ""
            if pid.isdigit() and not pid_alive(int(pid)):
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def django_on_postgres() -> bool:
    return settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"


def django_database_url() -> str:
    """The URL of the database Django uses (its test database, once that is set up)."""
    db = connection.settings_dict
    auth = quote(db["USER"]) + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or HOST}:{db['PORT'] or POSTGRES_PORT}/{db['NAME']}"


@pytest.fixture(scope="session", autouse=True)
def droppable_test_database(request: pytest.FixtureRequest, django_db_blocker) -> Iterator[None]:
    """Under PostgreSQL settings, end this process's other connections to the test database
    before pytest-django drops it: threads (the run recorder's, asgiref's) keep theirs open
    (CONN_MAX_AGE), and DROP DATABASE refuses while any is, leaving the database behind."""
    if not django_on_postgres():
        yield
        return
    request.getfixturevalue("django_db_setup")  # so this teardown runs before its own
    yield
    with django_db_blocker.unblock(), connection._nodb_cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            [connection.settings_dict["NAME"]],
        )


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The admin URL of the PostgreSQL server (database ``postgres``); started if needed."""
    admin_url = ensure_postgres()
    drop_stale_databases(admin_url)
    return admin_url


# Per connection, as the test settings' OPTIONS give it to this process's own connections.
NO_COMMIT_FLUSH = "-c synchronous_commit=off"


def without_commit_flush(admin_url: str, name: str) -> None:
    """Commits on the session's database return before the WAL reaches the disk: most of
    what the scale-out tests waited on was that flush (each committed row of a world, each
    flush between tests) on a disk other sessions keep busy. What other connections see,
    and when, is unchanged; only a crash of the PostgreSQL server itself, which no test
    causes, could lose the last commits. For the workers and web processes the tests start
    (new connections); this process's own get it from their OPTIONS (NO_COMMIT_FLUSH)."""
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')


@pytest.fixture(scope="session")
def postgres_url(request: pytest.FixtureRequest, postgres_server: str) -> Iterator[str]:
    """The URL of this session's own PostgreSQL database, dropped at the end.

    Under PostgreSQL settings it is Django's test database, so that workers and web
    processes see what the tests write; otherwise a database made for the session.
    """
    if django_on_postgres():
        request.getfixturevalue("django_db_setup")
        without_commit_flush(postgres_server, connection.settings_dict["NAME"])
        yield django_database_url()
        return
    name = f"{DATABASE_PREFIXES[1]}{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    without_commit_flush(postgres_server, name)
    yield database_url(name)
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# Per-session Redis databases


def owner_alive(owner: bytes | None) -> bool:
    if owner is None:
        return False
    host, _, pid = owner.decode().rpartition(":")
    # Another machine's session cannot be checked: assume it is alive.
    return host != socket.gethostname() or not pid.isdigit() or pid_alive(int(pid))


def claim_redis_db() -> int:
    """A Redis database number no other session holds and no one else uses (empty, or
    left by a session that died). Database 0 is never taken: it is everybody's default."""
    owner = f"{socket.gethostname()}:{os.getpid()}"
    count = int(redis.Redis(host=HOST, port=REDIS_PORT).config_get("databases")["databases"])
    for db in range(1, count):
        client = redis.Redis(host=HOST, port=REDIS_PORT, db=db)
        if client.set(REDIS_OWNER_KEY, owner, nx=True):
            if client.dbsize() == 1:
                return db
            client.delete(REDIS_OWNER_KEY)  # someone's data: not ours to take
            continue
        with client.pipeline() as pipe:
            try:
                pipe.watch(REDIS_OWNER_KEY)
                if owner_alive(pipe.get(REDIS_OWNER_KEY)):
                    continue
                pipe.multi()
                pipe.flushdb()
                pipe.set(REDIS_OWNER_KEY, owner)
                pipe.execute()
                return db
            except redis.WatchError:
                continue  # another session took it first
    raise RuntimeError(f"no free Redis database among 1-{count - 1} on {HOST}:{REDIS_PORT}")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """``redis://`` URL of a Redis database of this session's own, emptied at the end."""
    ensure_redis()
    db = claim_redis_db()
    yield f"redis://{HOST}:{REDIS_PORT}/{db}"
    redis.Redis(host=HOST, port=REDIS_PORT, db=db).flushdb()


# Processes


@pytest.fixture(scope="session")
def service_env(postgres_url: str, redis_url: str) -> dict[str, str]:
    """The environment of a worker or web process of this session: the celery driver on the
    session's PostgreSQL database and Redis database. Tests add to a copy of it."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("ANTHROPIC_", "DJANGO_", "CELERY_", "SWITCHYARD_"))
        and name not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY")
    }
    return {
        **inherited,
        "DJANGO_SETTINGS_MODULE": "webapp.settings",
        "DATABASE_URL": postgres_url,
        "REDIS_URL": redis_url,
        # Results let tests wait for a task; the driver itself keeps state in PostgreSQL.
        "CELERY_RESULT_BACKEND": redis_url,
        "SWITCHYARD_RUN_DRIVER": "celery",
        "DEBUG": "1",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "NO_PROXY": "127.0.0.1,localhost",
        "PYTHONUNBUFFERED": "1",
    }


def _die_with_parent() -> None:
    """In the child: be killed when the test session dies, however it dies. A worker left
    behind by a killed session would consume the next session's tasks (the Redis database
    number is reused once its owner is gone)."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Process:
    """A subprocess leading its own process group, so that a signal reaches all of it (a
    prefork worker's children too), as when the machine it runs on dies or freezes."""

    def __init__(self, command: list[str], env: dict[str, str], log_path: Path):
        self.command, self.env, self.log_path = command, env, log_path
        # What failures call it: "daphne" for python -m daphne ...
        self.name = command[2] if command[1:2] == ["-m"] else Path(command[0]).name
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_until(self, ready: Callable[[], bool], what: str, timeout: float) -> None:
        """Until `ready()`; fails with the process's log if it exits or the time runs out."""

        def ready_or_exited() -> bool:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited:\n{self.log()}")
            return ready()

        try:
            wait_for(ready_or_exited, timeout, 0.1, f"{self.name} {what}")
        except AssertionError as timed_out:
            raise AssertionError(f"{timed_out}\n{self.log()}") from None

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signum)

    def kill(self) -> None:
        """SIGKILL: gone at once, mid-task, without a word to the broker."""
        self.signal(signal.SIGKILL)
        assert self.process is not None
        self.process.wait(timeout=10)

    def state(self) -> str:
        """The leader's state letter in /proc: R running, S sleeping, T stopped, Z zombie."""
        with open(f"/proc/{self.pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0]

    def freeze(self) -> None:
        """SIGSTOP: alive but silent, as a machine that stalls. Returns once it has stopped."""
        self.signal(signal.SIGSTOP)
        self.wait_state(lambda state: state == "T")

    def thaw(self) -> None:
        """SIGCONT: carries on where it stopped. Returns once it runs again."""
        self.signal(signal.SIGCONT)
        self.wait_state(lambda state: state != "T")

    def wait_state(self, reached: Callable[[str], bool], timeout: float = 5) -> None:
        # A signal is delivered when the kernel next schedules the process, not at once.
        try:
            wait_for(lambda: reached(self.state()), timeout, 0.01, f"process {self.pid} to react")
        except AssertionError as timed_out:
            raise AssertionError(f"{timed_out}: stuck in state {self.state()}") from None

    def stop(self, grace: float = 10) -> None:
        """SIGTERM (a warm shutdown: the running task may finish), then SIGKILL."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.thaw()  # a frozen process only acts on SIGTERM once it runs again
            self.signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.kill()


class Worker(Process):
    """One ``celery -A webapp worker`` process (``--pool solo`` by default)."""

    def __init__(
        self,
        name: str,
        env: dict[str, str],
        log_path: Path,
        pool: str,
        size: int,
        loglevel: str = "INFO",
    ):
        self.hostname = f"{name}@{socket.gethostname()}"
        command = [
            sys.executable, "-m", "celery", "-A", "webapp", "worker",
            "--hostname", self.hostname,
            "--pool", pool,
            "--concurrency", str(size),
            "--loglevel", loglevel,
            # Tests start and stop workers all the time: no gossip, mingle or heartbeats.
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        super().__init__(command, env, log_path)
        self.name = f"worker {self.hostname}"

    def wait_ready(self, timeout: float = 180) -> None:
        # Generous: on a shared machine under load (load average 20 on 2 cores) a worker
        # took over a minute to import, connect and warm up.
        self.wait_until(lambda: f"{self.hostname} ready." in self.log(), "to be ready", timeout)


class Workers:
    """The ``celery_worker`` fixture: ``celery_worker()`` starts one worker and returns it
    once it consumes; ``celery_worker.many(n)`` starts n at once. All stop at teardown."""

    def __init__(self, env: dict[str, str], log_dir: Path):
        self.env, self.log_dir = env, log_dir
        self.started: list[Worker] = []

    def __call__(self, **options) -> Worker:
        return self.many(1, **options)[0]

    def many(
        self,
        count: int,
        *,
        pool: str = "solo",
        size: int = 1,
        env: dict[str, str] | None = None,
        loglevel: str = "INFO",
    ) -> list[Worker]:
        """`pool`: ``solo`` runs each task in the worker process itself, so one process is
        one worker and SIGKILL or SIGSTOP hits exactly the task it runs; a task may run its
        own event loop (``asyncio.run``). ``prefork`` (with `size` children) works too."""
        workers = []
        for _ in range(count):
            name = f"w{len(self.started) + 1}-{os.getpid()}"
            log_path = self.log_dir / f"{name}.log"
            worker = Worker(name, {**self.env, **(env or {})}, log_path, pool, size, loglevel)
            worker.start()
            self.started.append(worker)
            workers.append(worker)
        for worker in workers:
            worker.wait_ready()
        return workers

    def stop_all(self) -> None:
        for worker in self.started:
            worker.stop()


@pytest.fixture
def celery_worker(
    transactional_db, service_env: dict[str, str], tmp_path: Path
) -> Iterator[Workers]:
    workers = Workers(service_env, tmp_path)
    yield workers
    workers.stop_all()


@pytest.fixture
def celery_app(redis_url: str):
    """This process's Celery app, sending to (and reading results from) the session's Redis."""
    from webapp.celery import app

    app.conf.update(broker_url=redis_url, result_backend=redis_url)
    return app


class Server:
    """A web server under test: manage.py commands against its database, and ``orm()``,
    this process's ORM on that database, to build a test's world and to read it."""

    def __init__(self, url: str, env: dict[str, str], db_blocker=None):
        self.url = url
        self.env = env
        # pytest-django's guard: a test with no database of its own may still use the
        # server's, and only through orm().
        self.db_blocker = db_blocker

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def orm(self, build: Callable[[], T]) -> T:
        """``build()``'s result, with Django's default database the server's (its
        ``DATABASE_URL``) while it runs: models, managers and services read and write what
        the server serves.

        It runs on a thread of its own: Playwright's sync API keeps an event loop on the
        test's thread, where Django refuses to run the ORM. Its connection closes at the
        end, so the server never waits on it.
        """
        from django.contrib.contenttypes.models import ContentType  # once apps are ready

        config = dj_database_url.parse(self.env["DATABASE_URL"])
        if config["ENGINE"] == "django.db.backends.sqlite3":
            # As webapp/settings.py opens it: wait for the server's writes, never upgrade locks.
            config["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
        config = connections.configure_settings({DEFAULT_DB_ALIAS: config})[DEFAULT_DB_ALIAS]

        def on_server_database() -> T:
            ours = load_backend(config["ENGINE"]).DatabaseWrapper(config, DEFAULT_DB_ALIAS)
            connections[DEFAULT_DB_ALIAS] = ours  # this thread's connection only
            try:
                return build()
            finally:
                ours.close()
                del connections[DEFAULT_DB_ALIAS]

        unblocked = self.db_blocker.unblock() if self.db_blocker else contextlib.nullcontext()
        # Cached rows (content types) belong to the database they were read from.
        ContentType.objects.clear_cache()
        try:
            with unblocked, ThreadPoolExecutor(1, thread_name_prefix="server-orm") as thread:
                return thread.submit(on_server_database).result(timeout=120)
        finally:
            ContentType.objects.clear_cache()

    def create_user(self, username: str) -> str:
        """A user who signs in with PASSWORD (hashed as the server checks it)."""
        password = server_password_hash()
        self.orm(lambda: get_user_model().objects.create(username=username, password=password))
        return username


@cache
def server_password_hash() -> str:
    """PASSWORD hashed by the server's first hasher. This session hashes with a fast one
    (tests/conftest.py) that the servers it starts do not know; hashing once here keeps
    their real one's cost to the sign-ins that check it."""
    import webapp.settings as served  # the servers' settings module

    hashers = getattr(served, "PASSWORD_HASHERS", global_settings.PASSWORD_HASHERS)
    with override_settings(PASSWORD_HASHERS=hashers):
        return make_password(PASSWORD)


class DaphneServer(Server):
    """Daphne in a subprocess; restartable on the same port (a browser reconnects to it)."""

    def __init__(self, env: dict[str, str], log_path: Path, db_blocker=None):
        self.port = free_port()
        super().__init__(f"http://{HOST}:{self.port}", env, db_blocker)
        command = [sys.executable, "-m", "daphne", "-b", HOST, "-p", str(self.port)]
        self.process = Process([*command, "webapp.asgi:application"], env, log_path)

    @property
    def ws_url(self) -> str:
        return f"ws://{HOST}:{self.port}"

    # As long as a Celery worker gets (Worker.wait_ready): on a machine other sessions keep
    # busy, Daphne's imports alone have taken more than 30 s.
    def start(self, timeout: float = 60) -> None:
        self.process.start()
        self.process.wait_until(lambda: answers(self.port), f"to listen on {self.url}", timeout)

    def stop(self) -> None:
        self.process.stop()

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def celery_server(
    transactional_db, service_env: dict[str, str], tmp_path: Path
) -> Iterator[DaphneServer]:
    """Daphne with the celery driver and channels_redis, on the session's database."""
    server = DaphneServer(service_env, tmp_path / "daphne.log")
    server.start()
    yield server
    server.stop()
