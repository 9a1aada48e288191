#!/usr/bin/env bash
# Installs everything, lints, then runs the whole test suite (doctests of the engine included).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
# The browser tests drive Debian's Chromium (browsers cannot be downloaded here).
if [ ! -x /usr/bin/chromium ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m pytest --doctest-modules graphs webapp tests "$@"
