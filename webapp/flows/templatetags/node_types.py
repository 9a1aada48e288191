"""``{% load node_types %}``: facts of a node type where a template has only its name.

<span class="ty-chip" data-category="{{ node.type|node_category }}">
"""

from __future__ import annotations

from django import template

from webapp.flows import forms

register = template.Library()


@register.filter
def node_category(type_name: str) -> str:
    """The category of the node type named ``type_name`` ("" when there is no such type)."""
    return forms.category_of(type_name)
