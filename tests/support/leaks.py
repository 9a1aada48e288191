"""The secret-leak search: a planted secret, the forms it takes on the wire, and every
place the app keeps or shows something, searched for all of them.

Used on both drivers: tests/webapp/test_secret_leaks.py (embedded) and
tests/scaleout/test_secret_leaks_celery.py (Celery workers on PostgreSQL and Redis).
"""

from __future__ import annotations

import base64
import json
import urllib.parse
from collections.abc import Iterable, Mapping

from django.apps import apps

# The credential rows hold the values encrypted; searched anyway (a plain value there is a
# leak too), they only must not hold the plain text.
PLANTED = "sk-planted-e4a1-do-not-leak"


def needles(value: str) -> list[str]:
    """What to search for: the value, and what an HTTP client makes of it (a Basic token,
    its URL-encoded form) — a leak of any of them is a leak of the secret."""
    found = {value, base64.b64encode(value.encode()).decode()}
    found.add(urllib.parse.quote(value, safe=""))
    for line in value.splitlines():  # a custom-headers credential: each header's value
        _, sep, rest = line.partition(":")
        if sep and len(rest.strip()) >= 8:
            found.add(rest.strip())
    return sorted(found)


def _cell(value: object) -> object:
    if isinstance(value, memoryview | bytes):
        return bytes(value).decode("utf-8", "replace")
    return value


def database_dump() -> dict[str, str]:
    """Every row of every table of every installed model, as text, by table."""
    dump: dict[str, str] = {}
    for model in apps.get_models(include_auto_created=True):
        if model._meta.proxy or not model._meta.managed:
            continue
        fields = [f.attname for f in model._meta.concrete_fields]
        rows = model._base_manager.values_list(*fields)
        dump[model._meta.db_table] = json.dumps(
            [[_cell(v) for v in row] for row in rows], default=str, ensure_ascii=False
        )
    return dump


def leaks(places: Mapping[str, str], secret: str) -> dict[str, list[str]]:
    """Each place (its name) where a form of `secret` was found, with the forms found."""
    forms = needles(secret)
    return {
        name: found
        for name, text in places.items()
        if (found := [form for form in forms if form in text])
    }


def assert_nowhere(places: Mapping[str, str], secrets: Iterable[str]) -> None:
    for secret in secrets:
        found = leaks(places, secret)
        assert found == {}, f"the planted secret leaked into: {sorted(found)}"
