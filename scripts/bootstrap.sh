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
UV_PYTHON_DOWNLOADS=never "$TOOLS/bin/uv" sync --frozen --quiet --python 3.11
