"""Values as the pages show them, the same on every page."""

from __future__ import annotations

import json
from typing import Any


def pretty(value: Any) -> str:
    """Strings as they are; anything else as indented JSON.

    >>> pretty("hello")
    'hello'
    >>> print(pretty({"answer": [4, 2], "note": "é"}))
    {
      "answer": [
        4,
        2
      ],
      "note": "é"
    }
    """
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False)
