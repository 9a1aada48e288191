"""Idempotency-Key on PostgreSQL with the celery driver: requests racing with one key, each
in its own connection and transaction, start one run between them (the database's
uniqueness on (user, key) decides), and the losers answer with the winner's run."""

from __future__ import annotations

import json
import threading
import uuid

from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client

from webapp.accounts.models import ApiToken
from webapp.flows import services
from webapp.runs.models import IdempotencyKey, Run

JSON = "application/json"


def test_eight_racing_starts_with_one_key_make_one_run(transactional_db):
    alice = get_user_model().objects.create_user("alice", "alice@example.com")
    flow = services.create(alice, "Race", services.starter_graph("Race"))
    headers = {
        "Authorization": f"Bearer {ApiToken.issue(alice, 'tests')[1]}",
        "Idempotency-Key": uuid.uuid4().hex,
    }
    body = json.dumps({"inputs": {"input": "hi"}})
    barrier = threading.Barrier(8)
    answers: list[tuple[int, int, bool]] = []

    def start() -> None:
        try:
            barrier.wait()
            answer = Client().post(f"/api/flows/{flow.pk}/runs", body, JSON, headers=headers)
            replayed = answer.headers.get("Idempotent-Replayed") == "true"
            answers.append((answer.status_code, answer.json()["id"], replayed))
        finally:
            connection.close()

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [status for status, _, _ in answers] == [201] * 8
    assert len({run for _, run, _ in answers}) == 1
    assert sorted(replayed for _, _, replayed in answers) == [False] + [True] * 7
    assert Run.objects.count() == 1
    assert IdempotencyKey.objects.get().run_id == answers[0][1]
