"""Schemathesis on the embedded default (SQLite, runs in the server process): every
operation of the OpenAPI schema, then scenarios along its links. The setup, the checks and
why one of them is off: tests/webapp/schemathesis_api.py."""

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
def world(transactional_db: None, settings: Any) -> Any:
    """A fresh world for each operation, committed (see contract_world)."""
    settings.LOGIN_ADDRESS_FAILURES = NEVER_LOCKED
    # Runs of the world may stay queued (nothing executes them): a wait or an event stream
    # on one ends after a second rather than the deployment's minutes.
    settings.RUN_WAIT_MAX_S = settings.RUN_STREAM_MAX_S = 1
    return contract_world()


@schema.parametrize()
@hypothesis.settings(SETTINGS)
def test_every_operation_keeps_its_schema(case: Any, world: Any) -> None:
    case.call_and_validate(headers=alice())


def test_scenarios_along_the_links_keep_the_schema(world: Any) -> None:
    stateful_test(schema)
