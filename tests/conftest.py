import os
from pathlib import Path

pytest_plugins = ["tests.fakes.fixtures", "tests.services"]

SCALEOUT = Path(__file__).parent / "scaleout"
SCALEOUT_SETTINGS = "tests.scaleout.settings"


def pytest_ignore_collect(collection_path: Path, config) -> bool | None:
    # tests/scaleout need the web app on PostgreSQL and Redis, settings a whole session
    # runs under: they run in a pytest of their own (scripts/test.sh), never in this one.
    if (
        collection_path == SCALEOUT
        and os.environ.get("DJANGO_SETTINGS_MODULE") != SCALEOUT_SETTINGS
    ):
        return True
    return None
