#!/usr/bin/env bash
# Installs everything, migrates, and serves the app on http://127.0.0.1:8000 on the embedded
# default: SQLite in var/, the in-memory channel layer, runs in the server's own event loop.
# Sign up at /signup/: every new user gets the example flows. Without ANTHROPIC_API_KEY the
# offline model answers (it says so); set the key to use Claude.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
mkdir -p var
.venv/bin/python manage.py migrate --noinput
# Runs the last server left queued or running are marked failed (and so resumable). Right
# only for the in-process driver: its runs die with the server, so nothing can still be
# executing them. Under the celery driver, whose workers outlive the server, it does nothing.
.venv/bin/python manage.py recover_runs
if [ "${DEBUG:-1}" = "0" ] || [ "${DEBUG:-}" = "false" ]; then
    .venv/bin/python manage.py collectstatic --noinput
fi
export SWITCHYARD_OFFLINE_DELAY_MS="${SWITCHYARD_OFFLINE_DELAY_MS:-30}"
exec .venv/bin/python -m daphne -b "${HOST:-127.0.0.1}" -p "${PORT:-8000}" webapp.asgi:application
