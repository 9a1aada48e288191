"""The secret-leak search: a planted secret, the forms it takes on the wire, and every
place the app keeps or shows something, searched for all of them.

Used on both drivers: tests/webapp/test_secret_leaks.py (embedded) and
tests/scaleout/test_secret_leaks_celery.py (Celery workers on PostgreSQL and Redis).
"""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.parse
from collections.abc import Iterable, Mapping

from django.apps import apps
from django.test import Client

from webapp.accounts.models import ApiToken
from webapp.flows.sharing import service as sharing
from webapp.runs.models import Run

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


def page_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def body(answer) -> str:
    if answer.streaming and answer.is_async:  # the event stream

        async def read() -> bytes:
            return b"".join([chunk async for chunk in answer.streaming_content])

        return asyncio.run(read()).decode()
    if answer.streaming:
        return b"".join(answer.streaming_content).decode()
    return answer.content.decode()


def every_place(user, owner, run: Run) -> dict[str, str]:
    """Every API answer and page about `run` and its flow as `user` sees them, its share
    links' public pages (made by `owner`) and the database dump, by name."""
    flow = run.flow
    places: dict[str, str] = {}
    token = ApiToken.issue(user, "leak search")[1]
    api = Client(headers={"Authorization": f"Bearer {token}"})
    for path in (
        f"/api/runs/{run.pk}",
        f"/api/runs/{run.pk}/events",
        f"/api/runs/{run.pk}/stream",
        f"/api/flows/{flow.pk}",
        f"/api/flows/{flow.pk}/export",
        "/api/credentials",
        "/api/mcp-servers",
    ):
        answer = api.get(path)
        assert answer.status_code == 200, (path, answer.status_code)
        places[path] = body(answer)
    pages = page_client(user)
    nodes = [n["id"] for n in run.graph["nodes"]]
    for path in [
        f"/runs/{run.pk}/",
        f"/runs/{run.pk}/outputs/",
        f"/runs/{run.pk}/steps/",
        f"/runs/{run.pk}/replay/",
        f"/runs/{run.pk}/timeline/",
        *(f"/runs/{run.pk}/nodes/{node}/" for node in nodes),
        f"/flows/{flow.pk}/",
        f"/flows/{flow.pk}/export/",
        f"/flows/{flow.pk}/runs/",
        f"/flows/{flow.pk}/versions/",
        *(f"/flows/{flow.pk}/versions/{v.number}/" for v in flow.versions.all()),
        "/runs/",
    ]:
        answer = pages.get(path, headers={"HX-Request": "true"})
        assert answer.status_code == 200, (path, answer.status_code)
        places[path] = body(answer)
    _, flow_link = sharing.create_link(flow, owner)
    _, run_link = sharing.create_link(flow, owner, run=run)
    public = Client()
    for raw in (flow_link, run_link):
        for path in (f"/s/{raw}/", f"/s/{raw}/runs/{run.pk}/", f"/s/{raw}/runs/{run.pk}/events"):
            answer = public.get(path, follow=True)
            assert answer.status_code == 200, (path, answer.status_code)
            places[path] = answer.content.decode()
    for table, text in database_dump().items():
        places[f"table {table}"] = text
    return places
