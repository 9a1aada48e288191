"""Static files under a versioned prefix are cached for good (webapp/core/assets.py).

The browser side (a second editor load asks the server for no static file at all) is
tests/e2e/test_static_cache.py.
"""

from __future__ import annotations

import os
import re

import pytest
from django.templatetags.static import static
from django.test import Client, override_settings

from webapp.core import assets


@pytest.fixture(autouse=True)
def fresh_version():
    assets._cached = None
    yield
    assets._cached = None


def test_static_urls_carry_the_version_as_a_directory():
    # A directory, not a query: an ES module's relative imports inherit it.
    assert static("js/canvas/editor.js") == f"/static/v/{assets.version()}/js/canvas/editor.js"
    assert re.fullmatch(r"[0-9a-f]{12}", assets.version())


def test_a_file_under_the_current_version_is_served_immutable_and_revalidation_still_works():
    client = Client()
    url = static("js/canvas/panel.js")
    response = client.get(url)
    assert response.status_code == 200
    assert response["Cache-Control"] == assets.IMMUTABLE
    body = b"".join(response.streaming_content)
    plain = client.get("/static/js/canvas/panel.js")
    assert body == b"".join(plain.streaming_content)
    assert "immutable" not in plain.get("Cache-Control", "")
    # A browser that asks again anyway (a forced reload) gets a 304, still immutable.
    again = client.get(url, headers={"If-None-Match": response["ETag"]})
    assert again.status_code == 304
    assert again["Cache-Control"] == assets.IMMUTABLE


def test_another_version_gets_the_current_file_but_is_not_kept():
    # A page rendered before a deploy or an edit: its modules still load, never pinned.
    other = "0" * 12 if assets.version() != "0" * 12 else "1" * 12
    response = Client().get(f"/static/v/{other}/js/canvas/panel.js")
    assert response.status_code == 200
    assert "immutable" not in response.get("Cache-Control", "")


def test_missing_files_and_escapes_are_not_found():
    client = Client()
    version = assets.version()
    assert client.get(f"/static/v/{version}/js/nope.js").status_code == 404
    assert client.get(f"/static/v/{version}/../webapp/settings.py").status_code == 404
    assert client.get(f"/static/v/{version}/%2e%2e/webapp/settings.py").status_code == 404


def test_the_version_changes_when_a_file_changes(tmp_path):
    (tmp_path / "a.js").write_text("export const a = 1;\n")
    with override_settings(STATICFILES_DIRS=[tmp_path], DEBUG=False):
        before = assets._fingerprint()
        assert assets._fingerprint() == before
        stat = (tmp_path / "a.js").stat()
        os.utime(tmp_path / "a.js", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
        assert assets._fingerprint() != before
        (tmp_path / "b.js").write_text("")
        with_b = assets._fingerprint()
        (tmp_path / "b.js").unlink()
        assert assets._fingerprint() != with_b


def test_without_debug_the_version_is_taken_once(monkeypatch):
    calls = []
    monkeypatch.setattr(assets, "_fingerprint", lambda: calls.append(1) or "abcdefabcdef")
    monkeypatch.setattr(assets, "DEBUG_TTL_S", 0.0)
    with override_settings(DEBUG=False):
        assert assets.version() == assets.version() == "abcdefabcdef"
    assert len(calls) == 1
    with override_settings(DEBUG=True):
        assets.version()
    assert len(calls) == 2


def test_every_client_serves_the_static_files_from_one_scan_per_process():
    first, second = (Client() for _ in range(2))
    answers = [client.get("/static/js/canvas/panel.js") for client in (first, second)]
    assert [answer.status_code for answer in answers] == [200, 200]
    # Each client built its own middleware; the second took the first one's files.
    chains = [client.handler._middleware_chain for client in (first, second)]
    assert chains[0] is not chains[1]
    scanned = assets.StaticFiles._scanned["/static/"]
    assert "/static/js/canvas/panel.js" in scanned and "/static/js/canvas/editor.js" in scanned
    on_disk = os.path.join(os.path.dirname(assets.__file__), "../../static/js/canvas/panel.js")
    assert scanned["/static/js/canvas/panel.js"].alternatives[0][1] == os.path.realpath(on_disk)
