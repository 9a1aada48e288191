import os
from collections import Counter
from pathlib import Path

import pytest

pytest_plugins = ["tests.fakes.fixtures", "tests.services"]

SCALEOUT = Path(__file__).parent / "scaleout"
SCALEOUT_SETTINGS = "tests.scaleout.settings"


def pytest_configure(config) -> None:
    # Django's default hasher spends about half a second on each password on purpose; the
    # personas alone made it most of tests/webapp's time. Servers started by the tests keep
    # the real one, so the scale-out session, whose users log in to its Daphne processes,
    # keeps it too (the e2e users are made by their server).
    if os.environ.get("DJANGO_SETTINGS_MODULE") == SCALEOUT_SETTINGS:
        return
    from django.test import override_settings

    override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]).enable()


def pytest_ignore_collect(collection_path: Path, config) -> bool | None:
    # tests/scaleout need the web app on PostgreSQL and Redis, settings a whole session
    # runs under: they run in a pytest of their own (scripts/test.sh), never in this one.
    if (
        collection_path == SCALEOUT
        and os.environ.get("DJANGO_SETTINGS_MODULE") != SCALEOUT_SETTINGS
    ):
        return True
    return None


def pytest_collection_modifyitems(config, items) -> None:
    # Schemathesis gives every operation's test the function's node id, the operation only
    # in its name. pytest-xdist schedules by node id: under --dist loadfile the 84 operations
    # ran as one test and the other 83 never ran, in a session that passed. Each operation
    # gets its own id, and a session with two tests of one id stops before it starts.
    for item in items:
        if "[" in item.name and not item.nodeid.endswith(f"::{item.name}"):
            item._id = item.parent.id.child(item.name)
    counts = Counter(item.nodeid for item in items)
    twice = sorted(nodeid for nodeid, count in counts.items() if count > 1)
    if twice:
        raise pytest.UsageError(
            f"{len(twice)} test ids are shared by several tests (pytest-xdist would run only "
            f"one of each): {', '.join(twice[:5])}"
        )
