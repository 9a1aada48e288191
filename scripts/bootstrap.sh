#!/usr/bin/env bash
# Installs everything the project needs on a fresh machine: uv (pinned, in its own
# tool venv so `uv sync` never removes it), then the locked Python environment.
set -euo pipefail
cd "$(dirname "$0")/.."
UV_VERSION=0.13.9
TOOLS=.cache/tools
if [ ! -x "$TOOLS/bin/uv" ] || [ "$("$TOOLS/bin/uv" --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
    python3.11 -m venv "$TOOLS" 2>/dev/null || python3 -m venv "$TOOLS"
    "$TOOLS/bin/pip" install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi
# Bytecode compiled here, for the packages and the project alike: a shell that sets
# PYTHONDONTWRITEBYTECODE (this workplace's does) otherwise makes every process compile
# every module it imports from source, each time it starts: networkx alone took 1.0 s to
# import instead of 0.45 s, and each Celery worker and Daphne the tests start paid that.
UV_PYTHON_DOWNLOADS=never "$TOOLS/bin/uv" sync --frozen --quiet --python 3.11 --compile-bytecode
.venv/bin/python -m compileall -q -j 0 graphs webapp tests bench manage.py >/dev/null
