import os
from pathlib import Path

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
