import os
from pathlib import Path

pytest_plugins = ["tests.fakes.fixtures", "tests.services"]

SCALEOUT = Path(__file__).parent / "scaleout"
SCALEOUT_SETTINGS = "tests.scaleout.settings"


def pytest_configure(config) -> None:
    # Django's default hasher spends about half a second on each password on purpose; the
    # personas alone made it most of tests/webapp's time. Servers started by the tests
    # (e2e, scale-out) keep the real one.
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
