"""Path converters for ids users choose.

A node id reaches URLs (the inspector, re-run from a node), so routes take it as one path
segment with the engine's identifier character set (``graphs.document.IDENTIFIER``):
``reverse()`` then refuses to build a URL from anything else, and no id can add ``../``.
"""

from __future__ import annotations

from django.urls import register_converter

from graphs.document import IDENTIFIER


class IdentifierConverter:
    regex = IDENTIFIER.pattern

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(IdentifierConverter, "identifier")
