"""``{% load canvas_modules %}{% canvas_modules %}``: the preload links of the canvas pages.

Every module that the editor and run page scripts import, from the real import graph
(webapp/core/modules.py), and X6, which they all wait for.
"""

from __future__ import annotations

from django import template
from django.templatetags.static import static
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from webapp.core.modules import imported

register = template.Library()

ENTRIES = ("canvas/editor.js", "runs/view.js")


@register.simple_tag
def canvas_modules() -> SafeString:
    x6 = format_html('<link rel="preload" href="{}" as="script">\n', static("vendor/x6.min.js"))
    links = format_html_join(
        "\n",
        '<link rel="modulepreload" href="{}">',
        ((static(f"js/{name}"),) for name in imported(*ENTRIES)),
    )
    return x6 + links
