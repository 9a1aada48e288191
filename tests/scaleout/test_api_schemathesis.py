"""Schemathesis on PostgreSQL with the celery driver (runs go to Redis; no worker needed):
the same schema, checks and world as tests/webapp/test_api_schemathesis.py (SQLite). What
only PostgreSQL refuses (a NUL character in text, a lone surrogate) reaches it here."""

from __future__ import annotations

from typing import Any

import hypothesis
import pytest

from tests.webapp.schemathesis_api import (
    NEVER_LOCKED,
    SETTINGS,
    alice,
    contract_world,
    load_schema,
    stateful_test,
)

schema = load_schema()


@pytest.fixture
def world(transactional_db: None, postgres_url: str, settings: Any) -> Any:
    """A fresh world for each operation, committed (see contract_world)."""
    settings.LOGIN_ADDRESS_FAILURES = NEVER_LOCKED
    # Runs of the world may stay queued (nothing executes them): a wait or an event stream
    # on one ends after a second rather than the deployment's minutes.
    settings.RUN_WAIT_MAX_S = settings.RUN_STREAM_MAX_S = 1
    return contract_world()


@schema.parametrize()
@hypothesis.settings(SETTINGS)
def test_every_operation_keeps_its_schema_on_postgresql(case: Any, world: Any) -> None:
    case.call_and_validate(headers=alice())


def test_scenarios_along_the_links_keep_the_schema_on_postgresql(world: Any) -> None:
    stateful_test(schema)
