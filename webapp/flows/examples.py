"""The example flows every new user starts with, read from the repository's examples/."""

from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings

from webapp.flows import services


def example_documents() -> list[dict]:
    paths = sorted(Path(settings.EXAMPLES_DIR).glob("*.json"))
    return [json.loads(path.read_text()) for path in paths]


def give_examples_to(user) -> None:
    for document in example_documents():
        services.create(user, document["graph"]["name"], document, message="example")
