#!/usr/bin/env bash
# Installs everything, lints, then runs the whole test suite (doctests of the engine included).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m pytest --doctest-modules graphs tests "$@"
