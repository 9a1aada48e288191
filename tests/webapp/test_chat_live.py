"""A chat link over real HTTP, on a Daphne server running its turns: three turns with
memory, each reply streamed (Server-Sent Events) while the model writes it.

The server runs the offline model (it answers with its prompt, which holds the
conversation) with a pause between its words, so a reply arrives in several pieces.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from django.contrib.auth import get_user_model

from tests.services import DaphneServer
from webapp.chat import service as chat
from webapp.flows import services
from webapp.runs.models import Run

CHAT = json.loads((Path(__file__).parents[2] / "examples" / "chat.json").read_text())


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, django_db_blocker) -> Iterator[tuple]:
    folder = tmp_path_factory.mktemp("chat")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "DJANGO_"))},
        "DATABASE_URL": f"sqlite:///{folder / 'db.sqlite3'}",
        "DEBUG": "1",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "NO_PROXY": "127.0.0.1,localhost",
        "PYTHONUNBUFFERED": "1",
        "SWITCHYARD_OFFLINE_DELAY_MS": "10",
    }
    server = DaphneServer(env, folder / "daphne.log", django_db_blocker)
    server.manage("migrate", "--noinput")

    def world() -> str:
        alice = get_user_model().objects.create_user("alice", password="x")
        flow = services.create(alice, "Chat", CHAT)
        return chat.create_link(flow, alice, "Help").token

    token = server.orm(world)
    server.start()
    with httpx.Client(base_url=server.url, timeout=30, trust_env=False) as client:
        yield server, client, token
    server.stop()
    assert "Traceback" not in server.process.log(), server.process.log()


def turn(client: httpx.Client, token: str, message: str, state: dict) -> tuple[list[str], dict]:
    """One turn: (the streamed pieces, the stored reply)."""
    headers = {"X-Chat-Visitor": state["visitor"]} if "visitor" in state else {}
    body = {"message": message, "conversation": state.get("conversation")}
    started = client.post(f"/c/{token}/messages", json=body, headers=headers)
    assert started.status_code == 202, started.text
    state.update(visitor=started.json()["visitor"], conversation=started.json()["conversation"])
    pieces, reply = [], None
    headers = {"X-Chat-Visitor": state["visitor"]}
    with client.stream("GET", started.json()["stream"], headers=headers) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        event = ""
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
                if event == "delta":
                    pieces.append(data["text"])
                else:
                    reply = data
    assert reply is not None
    return pieces, reply


def test_three_turns_remember_the_conversation_and_stream_each_reply(live):
    server, client, token = live
    state: dict = {}
    first_pieces, first = turn(client, token, "I am Ada", state)
    _, second = turn(client, token, "I like tea", state)
    pieces, third = turn(client, token, "Who am I?", state)

    assert len(first_pieces) > 1 and len(pieces) > 1  # streamed, not in one piece
    assert "".join(first_pieces) == first["content"]
    assert "".join(pieces) == third["content"]
    assert third["content"].startswith("[offline model]")
    assert "user: I am Ada assistant: [offline model]" in third["content"]
    assert "user: I like tea assistant:" in third["content"]

    def third_run() -> dict:
        return Run.objects.filter(trigger="chat").order_by("-id").values("inputs").first()

    history = server.orm(third_run)["inputs"]["chat"]["history"]
    assert [(m["role"], m["content"]) for m in history] == [
        ("user", "I am Ada"),
        ("assistant", first["content"]),
        ("user", "I like tea"),
        ("assistant", second["content"]),
    ]

    stored = client.get(
        f"/c/{token}/conversations/{state['conversation']}",
        headers={"X-Chat-Visitor": state["visitor"]},
    ).json()["messages"]
    assert [m["content"] for m in stored][-2:] == ["Who am I?", third["content"]]
    assert not any(m["pending"] for m in stored)
