#!/usr/bin/env bash
# Installs everything, then runs a demo flow on the embedded default (offline model unless
# ANTHROPIC_API_KEY is set), streaming its events.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
exec .venv/bin/python -m graphs run "${1:-examples/chain.json}" --events -
