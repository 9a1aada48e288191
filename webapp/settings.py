"""Django settings for Switchyard.

Everything that differs between machines comes from the environment (README.md lists
it). The defaults are the embedded set-up: SQLite, the in-memory channel layer, runs
executed in the server's own event loop.
"""

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from graphs.settings import SettingsError, tool_settings_from_env
from webapp import env

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"
# The SQLite file and collected static files live here; WhiteNoise warns when it is missing.
(VAR_DIR / "static").mkdir(parents=True, exist_ok=True)

DEBUG = env.flag("DEBUG", True)
# A fixed key is only acceptable while DEBUG is on; production must set SECRET_KEY.
SECRET_KEY = env.text("SECRET_KEY", "insecure-development-key-only-for-debug" if DEBUG else None)
# Credentials (webapp/credentials) are encrypted at rest with these (MultiFernet: the first
# encrypts, all decrypt; `manage.py rotate_credentials` re-encrypts with the first). Only
# while DEBUG is on may they be derived from SECRET_KEY, as SECRET_KEY may be a fixed one.
CREDENTIAL_KEYS = env.fernet_keys("SWITCHYARD_CREDENTIAL_KEYS", SECRET_KEY if DEBUG else None)
ALLOWED_HOSTS = env.words("ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env.words("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "webapp.accounts",
    "webapp.teams",
    "webapp.flows",
    "webapp.runs",
    "webapp.execution",
    "webapp.chat",
    "webapp.schedules",
    "webapp.credentials",
    "webapp.mcpservers",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "webapp.csp.ContentSecurityPolicyMiddleware",
    # /static/v/<version>/... -> /static/..., cached for good (webapp/core/assets.py).
    "webapp.core.assets.versioned_static",
    # WhiteNoise, its scan of the static folders made once per process.
    "webapp.core.assets.StaticFiles",
    "webapp.middleware.api_body_limit",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last: every middleware above in one trip to the request's thread (the function says why).
    "webapp.middleware.sync_stack",
]

ROOT_URLCONF = "webapp.urls"
ASGI_APPLICATION = "webapp.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "webapp.teams.context_processors.waiting",
                "webapp.runs.context_processors.waiting",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env.text("DATABASE_URL", f"sqlite:///{VAR_DIR / 'switchyard.sqlite3'}"),
        # Persistent: under ASGI the ORM runs on one shared thread, and reopening the
        # connection for every request was most of that thread's time (bench/load.py).
        conn_max_age=env.integer("DATABASE_CONN_MAX_AGE", 600),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Django's backend, with the process's writers queueing on a lock instead of polling
    # SQLite's (webapp/sqlite/base.py says why).
    DATABASES["default"]["ENGINE"] = "webapp.sqlite"
    # WAL lets the live view read while a run writes; IMMEDIATE avoids lock-upgrade deadlocks.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # Tests use a file too: an in-memory shared-cache database locks whole tables
    # against the recorder's own connection, which a WAL file never does.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}

REDIS_SCHEMES = ("redis", "rediss", "unix")
REDIS_URL = env.optional_url("REDIS_URL", REDIS_SCHEMES)


def redis_channel_layer(url: str) -> dict:
    """channels_redis on `url`, tuned for redis-py 8 (also used by tests/scaleout)."""
    # redis-py 8 gives up on a read after 5 s by default, exactly the time channels_redis
    # blocks waiting for a message: every idle socket would break. (No retry_on_error: it
    # hides an outage from the consumer, which must tell the page to reconnect.)
    host = {"address": url, "socket_timeout": 10}
    return {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [host]}}


CHANNEL_LAYERS = {
    "default": (
        redis_channel_layer(REDIS_URL)
        if REDIS_URL
        else {"BACKEND": "webapp.memorylayer.InMemoryChannelLayer"}
    )
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "flow_list"
LOGOUT_REDIRECT_URL = "login"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"
WHITENOISE_USE_FINDERS = True
# {% static %} URLs carry a version of the files, so browsers keep them (webapp/core/assets.py).
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "webapp.core.assets.VersionedStaticFilesStorage"},
}

# Switchyard's own settings.
SIGNUP_ENABLED = env.flag("SWITCHYARD_SIGNUP_ENABLED", True)
# Failed sign-ins and bad API tokens (webapp/accounts/throttle.py): this many in the window
# lock the account name, or the client address, for LOGIN_LOCK_S, doubling with each lock
# in a row up to LOGIN_LOCK_MAX_S.
LOGIN_ACCOUNT_FAILURES = env.integer("SWITCHYARD_LOGIN_ACCOUNT_FAILURES", 5)
LOGIN_ADDRESS_FAILURES = env.integer("SWITCHYARD_LOGIN_ADDRESS_FAILURES", 20)
LOGIN_WINDOW_S = env.integer("SWITCHYARD_LOGIN_WINDOW_S", 900)
LOGIN_LOCK_S = env.integer("SWITCHYARD_LOGIN_LOCK_S", 300)
LOGIN_LOCK_MAX_S = env.integer("SWITCHYARD_LOGIN_LOCK_MAX_S", 3600)
# Bodies of API requests above this many bytes are refused with 413.
API_MAX_BODY_BYTES = env.integer("SWITCHYARD_API_MAX_BODY_BYTES", 2_000_000)
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES
# A file run input (webapp.runs.files): at most this many bytes each, and all of one
# run's together. Sent as multipart parts (webapp.runs.uploads) a run's body may be
# API_MAX_BODY_BYTES + RUN_FILES_MAX_BYTES; sent base64 in a JSON body they stay within
# API_MAX_BODY_BYTES. Never above RUN_FILES_HARD_MAX_BYTES: the Messages API takes
# requests up to 32 MB, so no larger file could reach a model.
RUN_FILES_HARD_MAX_BYTES = 32_000_000
RUN_FILE_MAX_BYTES = env.integer("SWITCHYARD_RUN_FILE_MAX_BYTES", 10_000_000, minimum=1)
RUN_FILES_MAX_BYTES = env.integer("SWITCHYARD_RUN_FILES_MAX_BYTES", 20_000_000, minimum=1)
if max(RUN_FILE_MAX_BYTES, RUN_FILES_MAX_BYTES) > RUN_FILES_HARD_MAX_BYTES:
    raise ImproperlyConfigured(
        "SWITCHYARD_RUN_FILE_MAX_BYTES and SWITCHYARD_RUN_FILES_MAX_BYTES are at most "
        f"{RUN_FILES_HARD_MAX_BYTES}"
    )
# Bodies of other requests above this many bytes (at least the API's cap plus 1 MB, for the
# import page) are refused with 413 while they arrive (webapp/bodylimit.py).
MAX_BODY_BYTES = env.integer("SWITCHYARD_MAX_BODY_BYTES", 10_000_000)
# What runs may take (webapp.runs.limits); 0 turns a limit off. A run whose event log
# would grow past MAX_RUN_EVENT_BYTES, or whose user's runs would store more than
# MAX_STORED_BYTES_PER_USER, fails with its log closed; a user with MAX_RUNS_IN_FLIGHT runs
# queued or running cannot start another (429), nor one over the quota (403).
MAX_RUN_EVENT_BYTES = env.integer("SWITCHYARD_MAX_RUN_EVENT_BYTES", 50_000_000, minimum=0)
MAX_RUNS_IN_FLIGHT = env.integer("SWITCHYARD_MAX_RUNS_IN_FLIGHT", 20, minimum=0)
# How deep flows may call flows (subflow nodes, agents' flow: tools): a run of a flow that
# a flow called is one level down (webapp.execution.subflows).
SUBFLOW_MAX_DEPTH = env.integer("SWITCHYARD_SUBFLOW_MAX_DEPTH", 5, minimum=1)
MAX_STORED_BYTES_PER_USER = env.integer(
    "SWITCHYARD_MAX_STORED_BYTES_PER_USER", 5_000_000_000, minimum=0
)
# The run API: how long `POST /api/flows/{id}/runs` may wait for a run to end (`wait`, at
# most 300 s in the API; a deployment may lower it), and how long one event stream
# (`GET /api/runs/{id}/stream`) stays open before the client resumes with Last-Event-ID.
RUN_WAIT_MAX_S = env.integer("SWITCHYARD_RUN_WAIT_MAX_S", 300, minimum=0)
RUN_STREAM_MAX_S = env.integer("SWITCHYARD_RUN_STREAM_MAX_S", 3600, minimum=1)
# Schedules (webapp.schedules): how often the server (embedded default) or each Celery
# worker looks for due ticks, in seconds; 0 stops this process ticking (``manage.py
# tick_schedules`` from cron then does it). A tick is at most this late.
SCHEDULE_TICK_S = env.integer("SWITCHYARD_SCHEDULE_TICK_S", 10, minimum=0)
# Approval timeouts (webapp.runs.timeouts): how often the server (embedded default) or each
# Celery worker's sweeper looks for waits past their deadline (seconds, above 0).
# A timeout fires at most this late.
WAIT_TICK_S = env.number("SWITCHYARD_WAIT_TICK_S", 1.0)
# The batch lane (webapp.runs.batches): how often a run parked on a Message Batch has its
# batch looked at (seconds); swept by the same tickers as the approval timeouts.
BATCH_POLL_S = env.number("SWITCHYARD_BATCH_POLL_S", 30.0)
# A webhook delivery's body above this many bytes is refused with 413 as it arrives.
WEBHOOK_MAX_BODY_BYTES = env.integer("SWITCHYARD_WEBHOOK_MAX_BODY_BYTES", 1_000_000, minimum=1)
# The MCP server (/mcp): how long a tool call waits for its run to end before answering that
# it still goes on (the run is not stopped).
MCP_WAIT_S = env.integer("SWITCHYARD_MCP_WAIT_S", 300, minimum=1)
# The engine reads its network settings (the http node, http_get, the allow-list of internal
# hosts) when the first run starts; they are read once now too, so a typo stops start-up.
try:
    tool_settings_from_env()
except SettingsError as exc:
    raise ImproperlyConfigured(str(exc)) from None
# What executes runs: a driver class by dotted path, resolved by webapp.execution as Django
# resolves EMAIL_BACKEND. SWITCHYARD_RUN_DRIVER names one of these. inprocess: runs execute
# in the web server's event loop (the embedded default). celery: nodes execute on Celery
# workers, on any number of machines (README, "Scale-out").
RUN_DRIVERS = {
    "inprocess": "webapp.execution.inprocess.InProcessDriver",
    "celery": "webapp.execution.distributed.CeleryDriver",
}
run_driver = env.choice("SWITCHYARD_RUN_DRIVER", "inprocess", tuple(RUN_DRIVERS))
RUN_DRIVER = RUN_DRIVERS[run_driver]
EXAMPLES_DIR = BASE_DIR / "examples"

# Celery (webapp/celery.py reads every CELERY_* setting). Only the celery driver uses it.
CELERY_SCHEMES = ("redis", "rediss", "redis+socket")
CELERY_BROKER_URL = (
    env.optional_url("CELERY_BROKER_URL", (*CELERY_SCHEMES, "amqp", "amqps")) or REDIS_URL
)
# Unset: no results are stored; the driver keeps a run's state in PostgreSQL.
CELERY_RESULT_BACKEND = env.optional_url("CELERY_RESULT_BACKEND", CELERY_SCHEMES)
# Acknowledged on receipt. Work is not lost with a message: the driver's NodeTask rows in
# PostgreSQL say what must run, leases bring back a node whose worker died, and the
# sweeper sends again a task not started NODE_REDISPATCH_S after it was sent. (Late
# acknowledgement would add nothing, since Redis hands an unacknowledged message back only
# after the visibility timeout, and with kombu 5.7 a worker holding one dies when Redis
# goes away.)
CELERY_TASK_ACKS_LATE = False
# A worker takes a message only when it has a free thread for it: a busy worker never sits
# on work an idle one could run, and one killed holds no message it had not started.
CELERY_WORKER_DISABLE_PREFETCH = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A task cannot be acknowledged over a lost broker connection, so it will be delivered
# again; that second delivery is a no-op (the node's lease in PostgreSQL says who runs it),
# so a node running when Redis goes away finishes rather than being stopped and paid for
# twice.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A message sent while the broker is down fails in seconds, not minutes: the run stays
# queued in the database and the request answers.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
# Redis hands an unacknowledged task to another worker after this many seconds (a worker
# killed outright never says it is gone). Longer than any task may run, or a slow task
# runs twice.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.integer("CELERY_VISIBILITY_TIMEOUT", 3600),
}
# The celery driver (webapp/execution/coordinator.py). A worker holds each node it runs by a
# lease it renews every NODE_HEARTBEAT_S; a lease not renewed for NODE_LEASE_S (its worker
# killed, frozen or cut off) is taken over by another worker. A cancel reaches a running
# node at its next heartbeat.
NODE_LEASE_S = env.number("SWITCHYARD_NODE_LEASE_S", 30.0)
NODE_HEARTBEAT_S = env.number("SWITCHYARD_NODE_HEARTBEAT_S", 0.25)
# A queued task the broker has not started after this long is handed to it again (a
# message lost with a broker that restarted empty); a second delivery is a no-op.
NODE_REDISPATCH_S = env.number("SWITCHYARD_NODE_REDISPATCH_S", 60.0)
# Concurrent calls to a model provider across all workers, by model client name, so a
# burst of runs queues for the provider instead of meeting a storm of 429s.
MODEL_CONCURRENCY = {"anthropic": env.integer("SWITCHYARD_ANTHROPIC_CONCURRENCY", 16)}
if run_driver == "celery":
    if CELERY_BROKER_URL is None:
        raise ImproperlyConfigured(
            "SWITCHYARD_RUN_DRIVER=celery needs a broker: set REDIS_URL "
            "(redis://host:6379/0), or CELERY_BROKER_URL to use another one"
        )
    if REDIS_URL is None:
        raise ImproperlyConfigured(
            "SWITCHYARD_RUN_DRIVER=celery needs REDIS_URL: events from workers reach the "
            "browsers through the Redis channel layer"
        )
    if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured(
            "SWITCHYARD_RUN_DRIVER=celery needs PostgreSQL: set DATABASE_URL=postgres://...; "
            "SQLite is a file on one machine, which workers on other machines cannot share"
        )
    # A process frozen inside a transaction would hold its run's row lock, and with it every
    # other worker of that run, for as long as it stays frozen: PostgreSQL ends such a
    # session within half a lease (5 s at least: a step must never be cut off for being
    # slow), so the run's node can be taken over.
    _idle_ms = int(max(NODE_LEASE_S * 500, 5000))
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = (
        f"-c idle_in_transaction_session_timeout={_idle_ms}"
    )

# US dollars per million tokens, by model name. A model matches the longest key that is a
# prefix of its name, so "claude-sonnet-4-5-20250929" finds "claude-sonnet-4-5". Costs are
# worked out when a run finishes and stored with it: updating a price changes new runs only.
# Unknown models cost 0 and are flagged as unpriced on the run page.
# Prompt caching: writing the cache costs 1.25x input (5-minute lifetime) or 2x (one hour),
# reading it 0.1x; an entry without these keys is priced at those multiples of its input.


def _cache_prices(per_million_input: float) -> dict[str, float]:
    return {
        "cache_write": round(per_million_input * 1.25, 4),
        "cache_write_1h": round(per_million_input * 2, 4),
        "cache_read": round(per_million_input * 0.1, 4),
    }


MODEL_PRICES = {
    "claude-opus-4-5": {"input": 5.00, "output": 25.00, **_cache_prices(5.00)},
    "claude-opus-4-1": {"input": 15.00, "output": 75.00, **_cache_prices(15.00)},
    "claude-opus-4": {"input": 15.00, "output": 75.00, **_cache_prices(15.00)},
    "claude-sonnet-4": {"input": 3.00, "output": 15.00, **_cache_prices(3.00)},
    "claude-3-7-sonnet": {"input": 3.00, "output": 15.00, **_cache_prices(3.00)},
    "claude-haiku-4-5": {"input": 1.00, "output": 5.00, **_cache_prices(1.00)},
    "claude-3-5-haiku": {"input": 0.80, "output": 4.00, **_cache_prices(0.80)},
    "offline": {"input": 0.00, "output": 0.00, **_cache_prices(0.00)},
}
# The stylesheets the vendored X6 (static/vendor/x6.min.js) writes into <style> elements for
# what static/js/canvas/ uses of it: allowed by hash, since X6 takes no nonce.
# tests/webapp/test_csp.py checks them against the vendored file.
X6_STYLESHEETS = {
    "core": "'sha256-gJ1D2aPO2W/RQzYB8532Lu3TzwRamxRlorOk0ZhcH48='",
    "dnd": "'sha256-mEq+xeHCjmedi47a/W6AVZwT53tRgxuYTn8UvJJ8zkk='",
    "minimap": "'sha256-M7OVxilx/0zLfMNXY4uV4vUxjLHBR9ceOhHeoeTEimc='",
    "selection": "'sha256-VkxowOVAlzxuSf/1AbtEFLdncjkOHvgEaOPGs9/N+2w='",
    "snapline": "'sha256-clajVm1iTbc9FbK8pB6sgIupxwaBzILP64MpCEhlXLs='",
}
# Content-Security-Policy (webapp/csp.py; Django 6.0 reads the same setting). Scripts and
# styles come from this server's files only: no inline script, handler, style or eval
# anywhere (X6's own stylesheets aside, above).
SECURE_CSP = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'", *X6_STYLESHEETS.values()],
    # data: for the icons inlined in stylesheets (ours and Swagger UI's).
    "img-src": ["'self'", "data:"],
    "font-src": ["'self'"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}
# Websocket limits: client frames are tiny control messages.
WS_MAX_FRAME_BYTES = 4096
WS_MAX_MESSAGES_PER_SECOND = 20

if not DEBUG:
    SECURE_SSL_REDIRECT = env.flag("SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.integer("SECURE_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "INFO" if DEBUG else "WARNING"},
}
