"""Shared personas: alice owns flows and a team, bob is her team's editor, carol its viewer;
charlie and dave are strangers who must never learn that alice's objects exist."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from webapp.accounts.models import ApiToken
from webapp.flows import services
from webapp.teams.models import Membership, Role, Team

JSON = "application/json"


def make_user(username: str):
    return get_user_model().objects.create_user(
        username, f"{username}@example.com", "correct horse battery"
    )


@pytest.fixture
def alice(db):
    return make_user("alice")


@pytest.fixture
def bob(db):
    return make_user("bob")


@pytest.fixture
def charlie(db):
    return make_user("charlie")


@pytest.fixture
def alice_token(alice) -> str:
    return ApiToken.issue(alice, "tests")[1]


@pytest.fixture
def charlie_token(charlie) -> str:
    return ApiToken.issue(charlie, "tests")[1]


@pytest.fixture
def carol(db):
    return make_user("carol")


@pytest.fixture
def dave(db):
    return make_user("dave")


@pytest.fixture
def team(alice, bob, carol):
    """Alice's team: bob edits, carol views."""
    team = Team.objects.create(name="Research")
    Membership.objects.create(team=team, user=alice, role=Role.OWNER)
    Membership.objects.create(team=team, user=bob, role=Role.EDITOR)
    Membership.objects.create(team=team, user=carol, role=Role.VIEWER)
    return team


@pytest.fixture
def team_flow(alice, team):
    """A flow of alice's team."""
    return services.create(alice, "Team flow", services.starter_graph("Team flow"), team=team)


@pytest.fixture
def api(client, alice, bob, carol, dave):
    """api(name).get/post/patch/delete: JSON requests with that persona's bearer token."""
    tokens = {u.username: ApiToken.issue(u, "tests")[1] for u in (alice, bob, carol, dave)}

    class Api:
        def __init__(self, name: str):
            self.headers = {"Authorization": f"Bearer {tokens[name]}"}

        def get(self, path: str):
            return client.get(path, headers=self.headers)

        def post(self, path: str, data=None):
            return client.post(path, data or {}, content_type=JSON, headers=self.headers)

        def put(self, path: str, data=None):
            return client.put(path, data or {}, content_type=JSON, headers=self.headers)

        def patch(self, path: str, data=None):
            return client.patch(path, data or {}, content_type=JSON, headers=self.headers)

        def delete(self, path: str):
            return client.delete(path, headers=self.headers)

    return Api
