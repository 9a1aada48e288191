"""The run API over real HTTP, on a Daphne server: ``wait``, ``Idempotency-Key`` and the
event stream (Server-Sent Events), as a program calling Switchyard would use them.

The server runs the offline model with a pause between its words, so a model call takes
a measurable while and a run can be caught before it ends.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from django.contrib.auth import get_user_model

from tests.services import HOST, DaphneServer
from tests.support.wait import wait_for
from webapp.accounts.models import ApiToken
from webapp.flows import services
from webapp.flows.webhooks import service as webhooks

WORDS_MS = 15  # the offline model's pause between streamed words
HOOK_CAP = 5_000  # bytes a webhook delivery may send


def slow_flow() -> dict:
    """topic -> llm -> answer: the model's reply streams word by word."""
    return {
        "graph": {"name": "Slow"},
        "nodes": [
            {"id": "topic", "type": "input", "config": {"name": "topic"}},
            {"id": "write", "type": "llm", "config": {"prompt": "Write about {{ topic }}."}},
            {"id": "answer", "type": "output", "config": {"name": "answer"}},
        ],
        "edges": [
            {"source": "topic", "target": "write", "source_port": "value", "target_port": "topic"},
            {"source": "write", "target": "answer", "source_port": "text", "target_port": "value"},
        ],
    }


def quick_flow(greeting: str) -> dict:
    return {
        "graph": {"name": "Quick"},
        "nodes": [
            {"id": "who", "type": "input", "config": {"name": "who"}},
            {"id": "say", "type": "template", "config": {"template": greeting + " {{ who }}"}},
            {"id": "out", "type": "output", "config": {"name": "greeting"}},
        ],
        "edges": [
            {"source": "who", "target": "say", "source_port": "value", "target_port": "who"},
            {"source": "say", "target": "out", "source_port": "text", "target_port": "value"},
        ],
    }


@dataclass
class Live:
    server: DaphneServer
    client: httpx.Client
    slow: int
    quick: int
    hook_path: str
    hook_secret: str
    tight_path: str  # a hook that takes 2 deliveries a minute
    tight_secret: str

    def start(self, flow: int, body: dict, **headers: str) -> httpx.Response:
        return self.client.post(f"/api/flows/{flow}/runs", json=body, headers=headers)

    def run(self, run_id: int) -> dict:
        return self.client.get(f"/api/runs/{run_id}").json()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, django_db_blocker) -> Iterator[Live]:
    folder = tmp_path_factory.mktemp("runapi")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "DJANGO_"))},
        "DATABASE_URL": f"sqlite:///{folder / 'db.sqlite3'}",
        "DEBUG": "1",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "NO_PROXY": "127.0.0.1,localhost",
        "PYTHONUNBUFFERED": "1",
        "SWITCHYARD_OFFLINE_DELAY_MS": str(WORDS_MS),
        "SWITCHYARD_WEBHOOK_MAX_BODY_BYTES": str(HOOK_CAP),
    }
    server = DaphneServer(env, folder / "daphne.log", django_db_blocker)
    server.manage("migrate", "--noinput")

    def world() -> dict:
        alice = get_user_model().objects.create_user("alice", password="x")
        slow = services.create(alice, "Slow", slow_flow())
        quick = services.create(alice, "Quick", quick_flow("Hello"))
        hook = webhooks.create(quick, alice, "test")
        tight = webhooks.create(quick, alice, "tight", per_minute=2)
        return {
            "token": ApiToken.issue(alice, "t")[1],
            "slow": slow.pk,
            "quick": quick.pk,
            "hook": (f"/hooks/{hook.token}", hook.secret),
            "tight": (f"/hooks/{tight.token}", tight.secret),
        }

    ids = server.orm(world)
    server.start()
    headers = {"Authorization": f"Bearer {ids['token']}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30, trust_env=False) as c:
        yield Live(server, c, ids["slow"], ids["quick"], *ids["hook"], *ids["tight"])
    server.stop()
    assert "Traceback" not in server.process.log(), server.process.log()


def fresh() -> str:
    """An input no earlier run had, so that no cached output can serve the run."""
    return f"topic {uuid.uuid4().hex}"


# wait


def test_a_run_that_ends_within_wait_answers_200_with_its_outputs(live):
    answer = live.start(live.quick, {"inputs": {"who": "Ada"}, "wait": 30})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["status"], body["outputs"], body["error"]) == (
        "succeeded",
        {"greeting": "Hello Ada"},
        "",
    )
    assert body["version"] == 1 and body["duration_s"] is not None
    assert live.run(body["id"])["trigger"] == "api"


def test_a_run_still_going_when_wait_ends_answers_202_and_goes_on(live):
    started = time.monotonic()
    answer = live.start(live.slow, {"inputs": {"topic": fresh()}, "wait": 0.2})
    assert answer.status_code == 202, answer.text
    assert time.monotonic() - started < 5
    run_id = answer.json()["id"]
    assert live.run(run_id)["status"] in ("queued", "running")
    wait_for(
        lambda: live.run(run_id)["status"] == "succeeded", timeout=60, message="the run to end"
    )


def test_without_wait_the_answer_is_201_at_once(live):
    answer = live.start(live.slow, {"inputs": {"topic": fresh()}})
    assert answer.status_code == 201
    assert answer.json()["status"] == "queued"


def test_a_client_that_leaves_while_waiting_does_not_stop_the_run(live):
    body = json.dumps({"inputs": {"topic": fresh()}, "wait": 60}).encode()
    token = live.client.headers["Authorization"]
    with socket.create_connection((HOST, live.server.port), timeout=5) as conn:
        conn.sendall(
            (
                f"POST /api/flows/{live.slow}/runs HTTP/1.1\r\nHost: {HOST}\r\n"
                f"Authorization: {token}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
        )
        wait_for(
            lambda: _newest(live)["status"] == "running", timeout=30, message="the run to start"
        )
    run_id = _newest(live)["id"]
    wait_for(lambda: live.run(run_id)["status"] != "running", timeout=60, message="the run to end")
    assert live.run(run_id)["status"] == "succeeded"


def _newest(live: Live) -> dict:
    return live.client.get("/api/runs", params={"limit": 1}).json()["items"][0]


# Idempotency-Key


def test_two_concurrent_starts_with_one_key_start_one_run(live):
    key = uuid.uuid4().hex
    body = {"inputs": {"topic": fresh()}}
    answers: list[httpx.Response] = []

    def post() -> None:
        answers.append(live.start(live.slow, body, **{"Idempotency-Key": key}))

    before = live.client.get("/api/runs", params={"flow": live.slow}).json()["count"]
    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a.status_code for a in answers) == [201] * 4
    assert len({a.json()["id"] for a in answers}) == 1
    assert [a.headers.get("Idempotent-Replayed") for a in answers].count(None) == 1
    after = live.client.get("/api/runs", params={"flow": live.slow}).json()["count"]
    assert after == before + 1


def test_a_key_used_for_another_body_is_a_409_and_starts_nothing(live):
    key = uuid.uuid4().hex
    first = live.start(live.quick, {"inputs": {"who": "Ada"}}, **{"Idempotency-Key": key})
    assert first.status_code == 201
    count = live.client.get("/api/runs", params={"flow": live.quick}).json()["count"]
    other = live.start(live.quick, {"inputs": {"who": "Bob"}}, **{"Idempotency-Key": key})
    assert other.status_code == 409
    assert other.json()["code"] == "idempotency_key_reused"
    assert live.client.get("/api/runs", params={"flow": live.quick}).json()["count"] == count


def test_a_replay_with_wait_answers_with_the_first_runs_outputs(live):
    key = uuid.uuid4().hex
    body = {"inputs": {"who": "Grace"}, "wait": 30}
    first = live.start(live.quick, body, **{"Idempotency-Key": key})
    again = live.start(live.quick, body, **{"Idempotency-Key": key})
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["outputs"] == {"greeting": "Hello Grace"}
    assert again.headers["Idempotent-Replayed"] == "true"


@pytest.mark.parametrize("key", ["", "two words", "é".encode(), "k" * 256])
def test_a_key_outside_its_character_set_is_a_400(live, key):
    answer = live.start(live.quick, {"inputs": {"who": "x"}}, **{"Idempotency-Key": key})
    assert answer.status_code == 400
    assert answer.json()["code"] == "bad_idempotency_key"


# The event stream


def read_stream(live: Live, run_id: int, **headers: str) -> list[dict]:
    """Every message of the run's stream until the server ends it."""
    messages = []
    with live.client.stream("GET", f"/api/runs/{run_id}/stream", headers=headers) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        fields: dict[str, str] = {}
        for line in answer.iter_lines():
            if line == "":
                if fields:
                    messages.append(fields)
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                fields[name] = value
    return messages


def test_the_stream_of_a_live_run_gives_each_event_once_in_order_and_ends(live):
    run_id = live.start(live.slow, {"inputs": {"topic": fresh()}}).json()["id"]
    messages = read_stream(live, run_id)
    seqs = [int(m["id"]) for m in messages]
    assert seqs == list(range(1, len(seqs) + 1))
    assert messages[-1]["event"] == "run_finished"
    assert [m["event"] for m in messages] == [json.loads(m["data"])["type"] for m in messages]
    # The model's words arrived one by one while the run went on.
    assert sum(m["event"] == "node_delta" for m in messages) > 3
    stored = live.client.get(f"/api/runs/{run_id}/events").json()["items"]
    assert [json.loads(m["data"]) for m in messages] == stored


def test_the_stream_resumes_after_last_event_id(live):
    run_id = live.start(live.quick, {"inputs": {"who": "Ada"}, "wait": 30}).json()["id"]
    everything = read_stream(live, run_id)
    resumed = read_stream(live, run_id, **{"Last-Event-ID": "3"})
    assert [m["id"] for m in resumed] == [m["id"] for m in everything[3:]]


def test_a_last_event_id_that_is_not_a_seq_is_a_400(live):
    run_id = live.start(live.quick, {"inputs": {"who": "Ada"}}).json()["id"]
    answer = live.client.get(f"/api/runs/{run_id}/stream", headers={"Last-Event-ID": "x1"})
    assert answer.status_code == 400
    assert answer.json()["code"] == "bad_last_event_id"


# Webhooks


def test_a_signed_delivery_with_wait_answers_with_the_runs_outputs(live):
    body = json.dumps({"who": "Hook", "unrelated": [1, 2]}).encode()
    answer = deliver(live, live.hook_path + "?wait=30", live.hook_secret, body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"] == {"greeting": "Hello Hook"}
    assert live.run(answer.json()["id"])["trigger"] == "webhook"


def test_a_delivery_over_the_cap_gets_413_before_its_body_is_sent(live):
    with socket.create_connection((HOST, live.server.port), timeout=5) as conn:
        conn.sendall(
            (
                f"POST {live.hook_path} HTTP/1.1\r\nHost: {HOST}\r\n"
                "Content-Type: application/json\r\nContent-Length: 50000000\r\n\r\n"
            ).encode()
        )
        conn.settimeout(5)
        head = conn.recv(65536)
    assert head.startswith(b"HTTP/1.1 413"), head[:200]
    assert b"body_too_large" in head or b"problem+json" in head


def deliver(
    live: Live, path: str, secret: str, body: bytes, ts: int | None = None
) -> httpx.Response:
    ts = int(time.time()) if ts is None else ts
    return live.client.post(
        path,
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Switchyard-Timestamp": str(ts),
            "X-Switchyard-Signature": webhooks.signature(secret, ts, body),
            "Authorization": "",
        },
    )


def quick_runs(live: Live) -> int:
    return live.client.get("/api/runs", params={"flow": live.quick}).json()["count"]


def test_bad_signatures_and_replays_are_401_and_start_nothing(live):
    before = quick_runs(live)
    body = b'{"who": "Eve"}'
    wrong_secret = deliver(live, live.hook_path, "whsec_guess", body)
    replayed = deliver(live, live.hook_path, live.hook_secret, body, ts=int(time.time()) - 600)
    unsigned = live.client.post(live.hook_path, content=body, headers={"Authorization": ""})
    assert [a.status_code for a in (wrong_secret, replayed, unsigned)] == [401, 401, 401]
    assert wrong_secret.headers["content-type"] == "application/problem+json"
    assert quick_runs(live) == before


def test_past_a_hooks_rate_the_answer_is_429_with_retry_after(live):
    answers = [
        deliver(live, live.tight_path, live.tight_secret, b'{"who": "Ada"}') for _ in range(3)
    ]
    assert [a.status_code for a in answers] == [202, 202, 429]
    assert 1 <= int(answers[2].headers["Retry-After"]) <= 60
