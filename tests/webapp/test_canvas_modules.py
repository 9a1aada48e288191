"""The canvas pages ask for every module their scripts import in one go (modulepreload).

Without a ``<link rel=modulepreload>`` for each, the browser discovers a module only when
the one importing it has arrived, one import level per round trip, before X6 can draw. The
list is walked from the real imports (webapp/core/modules.py), so a new import cannot
fall out of it.
"""

from __future__ import annotations

import re

from webapp.core.modules import JS, imported


def wanted() -> set[str]:
    return set(imported("canvas/editor.js", "runs/view.js"))


def test_the_preload_list_follows_imports_down_to_modules_the_page_never_names():
    # schematable.js is imported by panel.js, which editor.js imports; log.js by view.js.
    assert {"canvas/panel.js", "canvas/schematable.js", "runs/log.js", "lib/net.js"} <= wanted()
    assert all((JS / name).is_file() for name in wanted())
    assert not any(name.endswith(".test.js") for name in wanted())


def test_alices_editor_page_asks_for_every_canvas_module_before_its_scripts(alice):
    from django.test import Client

    from webapp.flows import services

    flow = services.create(alice, "Router", {"graph": {"name": "r"}, "nodes": [], "edges": []})
    client = Client()
    client.force_login(alice)
    html = client.get(f"/flows/{flow.pk}/").content.decode()
    asked = set(re.findall(r'rel="modulepreload" href="/static/v/\w+/js/([^"]+)"', html))
    assert asked == wanted()
    # In the head, so the downloads start before the body (and its flow data) is parsed.
    assert html.index('rel="modulepreload"') < html.index("<body")
    x6 = re.search(r'rel="preload" href="/static/v/\w+/vendor/x6.min.js" as="script"', html)
    assert x6 is not None and x6.start() < html.index("<body")


def _editor_queries(user, flow) -> list[str]:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(user)
    client.get(f"/flows/{flow.pk}/")  # sessions, caches: the second load is the one measured
    with CaptureQueriesContext(connection) as captured:
        response = client.get(f"/flows/{flow.pk}/")
    assert response.status_code == 200
    return [query["sql"] for query in captured.captured_queries]


def test_alices_editor_reads_the_document_once_and_its_queries_do_not_grow_with_the_flow(alice):
    from bench.editor_open import dag_doc, empty_doc
    from webapp.flows import services

    small = _editor_queries(alice, services.create(alice, "small", empty_doc()))
    big_doc = dag_doc(30, 10)
    big = _editor_queries(alice, services.create(alice, "big", big_doc))
    assert len(big_doc["nodes"]) == 302
    assert len(big) == len(small)
    # The saved document (the version's graph column) is fetched and decoded once.
    documents = [sql for sql in big if '"flows_flowversion"."graph"' in sql]
    assert len(documents) == 1, documents
