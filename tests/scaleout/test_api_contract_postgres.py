"""Issue 11, finding 4, on PostgreSQL itself: text with a NUL character cannot be stored
there (it was a 500); the API refuses it with a 422 naming the field, and stores nothing."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.db import DataError, transaction
from django.test import Client

from tests.webapp.test_api_contract import assert_problem, nul_requests
from webapp.accounts.models import ApiToken
from webapp.flows import services
from webapp.flows.models import Flow
from webapp.runs.models import Run
from webapp.teams.models import Membership, Role, Team

JSON = "application/json"


def test_postgresql_cannot_store_a_nul_character(db):
    with pytest.raises((DataError, ValueError)), transaction.atomic():
        Team.objects.create(name="a\x00b")


def test_the_api_refuses_nul_characters_before_postgresql_sees_them(db):
    alice = get_user_model().objects.create_user("alice", "alice@example.com")
    get_user_model().objects.create_user("bob", "bob@example.com")
    team = Team.objects.create(name="Research")
    Membership.objects.create(team=team, user=alice, role=Role.OWNER)
    flow = services.create(alice, "Team flow", services.starter_graph("Team flow"), team=team)
    headers = {"Authorization": f"Bearer {ApiToken.issue(alice, 'tests')[1]}"}
    before = (Team.objects.count(), Flow.objects.count(), Run.objects.count())
    client = Client()
    for method, path, body, where in nul_requests(flow, team):
        response = client.generic(method.upper(), path, json.dumps(body), JSON, headers=headers)
        problem = assert_problem(response, 422, "validation_error")
        assert problem["errors"][0]["path"] == where
    assert (Team.objects.count(), Flow.objects.count(), Run.objects.count()) == before
