"""The numbers the pages write, pinned by the fixture static/js/lib/format.test.js reads too,
so the browser's copy of them (static/js/lib/format.js) cannot drift from the server's."""

from __future__ import annotations

import json
from pathlib import Path

from django.template.defaultfilters import floatformat

from webapp.runs.pricing import format_usd

FIXTURE = json.loads((Path(__file__).parents[1] / "fixtures" / "format.json").read_text())


def test_dollars_in_the_shared_fixture_are_what_format_usd_writes():
    assert [format_usd(amount) for amount, _ in FIXTURE["usd"]] == [
        text for _, text in FIXTURE["usd"]
    ]


def test_seconds_in_the_shared_fixture_are_what_the_run_page_writes():
    # templates/runs/detail.html: {{ duration_s|floatformat:1 }} s
    assert [f"{floatformat(seconds, 1)} s" for seconds, _ in FIXTURE["seconds"]] == [
        text for _, text in FIXTURE["seconds"]
    ]
