"""Schemathesis against the API's own OpenAPI schema, as alice with a bearer token in the
permission matrix's world (so generated ids often hit real objects: hers, her team's and
ones she may not see). Collected by ``test_api_schemathesis.py`` (SQLite, the embedded
default) and ``tests/scaleout/test_api_schemathesis.py`` (PostgreSQL, the celery driver).

Every operation runs the examples, coverage and fuzzing phases, positive and negative
data; the stateful test follows the links the schema declares (flow -> its runs, versions,
shares ...). Checks: all of Schemathesis's, except

- ``positive_data_acceptance``: the schema cannot say everything the engine checks (a
  cycle needs ``max_iterations``, a template must parse, an input must be given), so a
  schema-valid flow or run can rightly be refused with 400 ``invalid_flow``;
- ``max_response_time``: timing on a machine shared with other test runs is no contract.

Bounded so that each backend's whole run fits in a couple of minutes: ``MAX_EXAMPLES`` per
operation and phase, ``STATEFUL_STEPS`` per scenario, and Hypothesis's deadline off (the
machine is shared; slowness is not what this looks for).
"""

from __future__ import annotations

import os
from typing import Any

import hypothesis
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import strategies as st
from schemathesis.config import SchemathesisConfig

from webapp.accounts.models import ApiToken
from webapp.api_schema import MAX_INT64

MAX_EXAMPLES = int(os.environ.get("SWITCHYARD_SCHEMATHESIS_EXAMPLES", "12"))
STATEFUL_STEPS = 8
STATEFUL_SCENARIOS = 20
# Schemathesis sends bad tokens on purpose (ignored_auth, missing-header cases): from one
# address they would soon lock it (accounts/throttle.py) and turn every answer into a 429.
NEVER_LOCKED = 10**9

# max_response_time is off unless given a limit.
SKIPPED_CHECKS = ("positive_data_acceptance",)

CONFIG = SchemathesisConfig.from_dict(
    {
        "generation": {
            "mode": "all",
            "max-examples": MAX_EXAMPLES,
            # Reproducible in CI; a failure names its case, and shrinking costs time.
            "deterministic": True,
            "no-shrink": True,
            "database": "none",
            # The tests send alice's token themselves (alice()); a generated
            # Authorization header would only be replaced.
            "with-security-parameters": False,
        },
        "checks": {name: {"enabled": False} for name in SKIPPED_CHECKS},
        "phases": {"stateful": {"max-steps": STATEFUL_STEPS}},
        "suppress-health-check": ["all"],
    }
)
SETTINGS = hypothesis.settings(
    deadline=None,
    max_examples=MAX_EXAMPLES,
    suppress_health_check=list(hypothesis.HealthCheck),
    derandomize=True,
    database=None,
)


def real_ids(world: Any) -> dict[str, list[Any]]:
    """Values for each path parameter: alice's objects, and some she may not see."""
    users = world.users
    return {
        "flow_id": [world.flow.pk],
        "run_id": [world.run.pk, world.other_run.pk],
        "team_id": [world.team.pk, world.dave_invite.team_id],
        "user_id": [users[name].pk for name in ("alice", "bob", "carol", "erin")],
        "share_id": [world.share.pk],
        "link_id": [world.link.pk],
        "invite_id": [world.invite.pk, world.dave_invite.pk],
        "number": [1, 2],
        "hook_id": [world.hook.pk],
    }


# The ids of the world the running test built (see contract_world): read while Hypothesis
# draws each case, so every test meets its own world.
KNOWN: dict[str, list[Any]] = {}
TOKEN: list[str] = [""]


def load_schema() -> Any:
    """The schema as the app serves it, called in-process (WSGI)."""
    schema = schemathesis.openapi.from_wsgi(
        "/api/openapi.json", get_wsgi_application(), config=CONFIG
    )

    @schema.hook
    def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> Any:
        if not path_parameters:
            return st.just(path_parameters)
        # Half the time, the ids of real objects (generated ones rarely exist). Only valid
        # ids are replaced: a negative case must stay as invalid as it was drawn.
        real = {
            name: st.sampled_from(KNOWN[name])
            if KNOWN.get(name) and type(value) is int and 1 <= value <= MAX_INT64
            else st.just(value)
            for name, value in path_parameters.items()
        }
        return st.one_of(st.just(path_parameters), st.fixed_dictionaries(real))

    return schema


def contract_world() -> Any:
    """The permission matrix's world. Tests using it need committed rows
    (``transactional_db``): the run driver and cancel reach the database from other
    threads, outside any test transaction."""
    from tests.webapp.test_permission_matrix import build_world

    world = build_world()
    KNOWN.clear()
    KNOWN.update(real_ids(world))
    TOKEN[0] = ApiToken.issue(world.users["alice"], "schemathesis")[1]
    return world


def alice() -> dict[str, str]:
    """Alice's token for the world of the running test, sent as a caller's own header:
    Schemathesis' ignored_auth check then probes the operation without it, and with a bad
    one. (An auth provider's token would be fixed when coverage cases are built, before
    any world exists.)"""
    return {"Authorization": f"Bearer {TOKEN[0]}"}


def stateful_test(schema: Any) -> None:
    """Scenarios along the schema's links (a flow created, then run, shared, listed ...)."""

    class Scenarios(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": alice()}

        def validate_response(
            self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any
        ) -> None:
            # As call_and_validate does: the checks learn that the token is the caller's
            # (ignored_auth takes it away), not a generated one.
            case.validate_response(
                response,
                additional_checks=additional_checks,
                headers=kwargs.get("headers"),
                transport_kwargs=kwargs or None,
                recorder=self.recorder,
            )

    Scenarios.run(
        settings=hypothesis.settings(
            SETTINGS, max_examples=STATEFUL_SCENARIOS, stateful_step_count=STATEFUL_STEPS
        )
    )
