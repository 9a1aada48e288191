"""The ES modules a page script imports, found by walking their ``import`` lines.

The canvas pages ask for every module up front (``<link rel=modulepreload>``): without
that the browser finds a module only when the one importing it has arrived, one import
level per round trip before X6 can draw. Walking the real imports keeps the list true as
modules come and go; a hand-written list drifted as soon as two changes met.

>>> "canvas/panel.js" in imported("canvas/editor.js")
True
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

JS = Path(__file__).resolve().parents[2] / "static" / "js"
# Static imports only (`import x from "./a.js"`, `export * from "./a.js"`, `import "./a.js"`):
# a dynamic import() is asked for on purpose later, so it is not preloaded.
_FROM = re.compile(r'^\s*(?:import|export)\b[^"\';]*?from\s+"(\.{1,2}/[^"]+)"', re.MULTILINE)
_BARE = re.compile(r'^\s*import\s+"(\.{1,2}/[^"]+)"', re.MULTILINE)


@cache
def imported(*entries: str) -> tuple[str, ...]:
    """``entries`` and every module they import, transitively, as sorted paths under
    static/js, the entries first."""
    seen: dict[str, None] = {}
    todo = [JS / entry for entry in reversed(entries)]
    while todo:
        path = todo.pop().resolve()
        name = path.relative_to(JS).as_posix()
        if name in seen:
            continue
        seen[name] = None
        text = path.read_text()
        todo.extend(
            path.parent / spec for spec in reversed(_FROM.findall(text) + _BARE.findall(text))
        )
    return entries + tuple(sorted(set(seen) - set(entries)))
