"""Shared personas: alice owns flows, bob is her teammate (issue 5 gives him access),
charlie is a stranger who must never learn that alice's objects exist."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from webapp.accounts.models import ApiToken


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
