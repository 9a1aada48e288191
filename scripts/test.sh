#!/usr/bin/env bash
# Installs everything, lints, then runs the whole test suite (doctests of the engine included)
# and, alongside it, the scale-out tests against real PostgreSQL, Redis and Celery workers.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
# From Debian's packages, when missing: Chromium for the browser tests (browsers cannot be
# downloaded here), Node for the JavaScript tests, bubblewrap for the code node's sandbox,
# PostgreSQL and Redis for the scale-out tests. tests/services.py uses the servers on 127.0.0.1 when they answer, and otherwise
# starts these.
packages=()
[ -x /usr/bin/chromium ] || packages+=(chromium)
command -v node >/dev/null || packages+=(nodejs)
# bubblewrap: the code node's sandbox (graphs/codebox.py), which refuses to run without it.
command -v bwrap >/dev/null || packages+=(bubblewrap)
command -v redis-server >/dev/null || packages+=(redis-server)
fresh_postgres=
if ! ls /etc/postgresql/*/main/pg_hba.conf >/dev/null 2>&1; then
    packages+=(postgresql)
    fresh_postgres=1
fi
if [ ${#packages[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
fi
if [ -n "$fresh_postgres" ]; then
    # A new cluster lets in only the postgres OS user; the tests connect over loopback as
    # postgres. Only a cluster installed here, for the tests, is opened up like this.
    for hba in /etc/postgresql/*/main/pg_hba.conf; do
        printf '%s\n' 'local all all trust' 'host all all 127.0.0.1/32 trust' \
            'host all all ::1/128 trust' >"$hba"
        version=$(basename "$(dirname "$(dirname "$hba")")")
        # Already running if the package started it: it must re-read the file.
        pg_ctlcluster --skip-systemctl-redirect "$version" main reload 2>/dev/null || true
    done
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
# The browser's pure modules (static/js/**/*.test.js), on Node's own test runner: no packages.
find static/js -name '*.test.js' -print0 | sort -z | xargs -0 --no-run-if-empty node --test
# The web app on PostgreSQL and Redis with the celery driver: settings a whole pytest session
# runs under, so a run of its own (tests/conftest.py keeps tests/scaleout out of the first).
# It runs alongside the first session, on two workers of its own: most of its time it waits
# (on the Celery workers and Daphne processes it starts, on runs held by the fake model's
# delays: user+sys 9m26s of 28m18s real in one serial run), so it adds little to the first
# session's load, and serially it ended last (CI: 21m54s against the first's 20m25s). Each
# worker is a session of its own: its own databases, Redis database and ports
# (tests/services.py). Its report follows the first's.
scaleout_log=$(mktemp)
.venv/bin/python -m pytest -n 2 --dist loadfile --ds tests.scaleout.settings tests/scaleout \
    >"$scaleout_log" 2>&1 &
scaleout=$!
# Interrupted: the session stops too (its workers and servers die with it).
trap 'kill "$scaleout" 2>/dev/null || true; rm -f "$scaleout_log"' EXIT
# Two workers, one per core of the machines this runs on (three were tried: 12m56s and
# 14m48s against 14m13s on two, and a browser test's 5 s wait ran out in a third run). A
# file's tests stay on one worker, so its module fixtures (a Daphne server, a browser)
# start once.
first=0
.venv/bin/python -m pytest -n 2 --dist loadfile --doctest-modules graphs webapp tests "$@" || first=$?
scaleout_status=0
wait "$scaleout" || scaleout_status=$?
trap 'rm -f "$scaleout_log"' EXIT
echo "--- the scale-out session (pytest -n 2 --ds tests.scaleout.settings tests/scaleout) ---"
cat "$scaleout_log"
# Either failing fails the whole: the first session's status first, as when they ran in turn.
[ "$first" -eq 0 ] || exit "$first"
exit "$scaleout_status"
