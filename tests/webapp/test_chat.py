"""Chat links and the chat panel through Django's test client: alice's team flow is a chat
flow; bob (editor) makes and manages links, carol (viewer) and dave (stranger) cannot;
anonymous visitors chat through a link, each in conversations of their own, within the
link's rates and origins.

Runs do not execute here (the transaction never commits); a test ends one by writing
its outcome, as the driver would (``finish``). tests/webapp/test_chat_live.py runs them for
real over HTTP, tests/e2e/test_chat_embed.py in a browser on another origin.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.utils import timezone

from webapp.chat.models import ChatLink, ChatMessage, Conversation
from webapp.chat.service import visitor_from, visitor_token
from webapp.flows import services
from webapp.runs.models import Run

CHAT = json.loads((Path(__file__).parents[2] / "examples" / "chat.json").read_text())
HOST_ORIGIN = "http://widget.example:8080"


@pytest.fixture
def flow(alice, team):
    return services.create(alice, "Chat", CHAT, team=team)


@pytest.fixture
def link(api, flow):
    answer = api("bob").post(
        f"/api/flows/{flow.pk}/chat-links",
        {"name": "Help", "allowed_origins": [HOST_ORIGIN + "/"], "per_visitor_minute": 3},
    )
    assert answer.status_code == 201, answer.content
    return answer.json()


def say(client, link: dict, message: str, visitor: str | None = None, conversation=None, **hdr):
    headers = {"X-Chat-Visitor": visitor} if visitor else {}
    return client.post(
        f"/c/{link['token']}/messages",
        {"message": message, "conversation": conversation},
        content_type="application/json",
        headers={**headers, **hdr},
    )


def finish(reply_id: int, reply: str | None) -> Run:
    """End the reply's run as the driver would: succeeded with `reply`, or failed (None)."""
    run = ChatMessage.objects.get(pk=reply_id).run
    run.status = Run.Status.SUCCEEDED if reply is not None else Run.Status.FAILED
    run.outputs = {"reply": reply} if reply is not None else {}
    run.finished_at = timezone.now()
    run.save()
    return run


# Managing links


def test_an_editor_makes_a_link_with_its_page_and_embed_snippet(link, flow):
    assert re.fullmatch(r"http://testserver/c/[A-Za-z0-9_-]{43}/", link["url"])
    assert link["embed"] == (
        f'<script src="http://testserver/c/embed.js" data-chat="{link["token"]}" async></script>'
    )
    assert link["allowed_origins"] == [HOST_ORIGIN]
    assert ChatLink.objects.get().created_by.username == "bob"


def test_owners_and_editors_manage_links_viewers_get_403_and_strangers_404(api, flow, link):
    base = f"/api/flows/{flow.pk}/chat-links"
    assert api("alice").get(base).json()["count"] == 1
    assert api("carol").get(base).status_code == 403
    assert api("carol").post(base, {"name": "x"}).status_code == 403
    assert api("carol").delete(f"{base}/{link['id']}").status_code == 403
    assert api("dave").get(base).status_code == 404
    assert api("dave").post(base, {"name": "x"}).status_code == 404
    assert api("dave").patch(f"{base}/{link['id']}", {"enabled": False}).status_code == 404
    assert ChatLink.objects.get().enabled
    assert api("alice").patch(f"{base}/{link['id']}", {"enabled": False}).json()["enabled"] is False
    assert api("bob").delete(f"{base}/{link['id']}").status_code == 204
    assert not ChatLink.objects.exists()


def test_a_flow_without_a_chat_input_gets_no_link(api, team_flow):
    answer = api("alice").post(f"/api/flows/{team_flow.pk}/chat-links", {"name": "x"})
    assert answer.status_code == 400
    assert answer.json()["code"] == "not_a_chat_flow"


@pytest.mark.parametrize(
    "origin", ["example.com", "ftp://example.com", "https://example.com/path", "javascript:x"]
)
def test_an_allowed_origin_must_be_an_origin(api, flow, origin):
    answer = api("bob").post(
        f"/api/flows/{flow.pk}/chat-links", {"name": "x", "allowed_origins": [origin]}
    )
    assert answer.status_code == 400
    assert origin in answer.json()["detail"]


# The page


def test_the_page_may_be_framed_by_the_allowed_origins_only(client, link):
    page = client.get(f"/c/{link['token']}/?embed=1")
    assert page.status_code == 200
    policy = page["Content-Security-Policy"]
    assert f"frame-ancestors 'self' {HOST_ORIGIN}" in policy
    assert "frame-ancestors 'none'" not in policy
    assert "script-src 'self'" in policy
    assert "X-Frame-Options" not in page
    assert b"<script>" not in page.content  # CSP: no inline script


def test_every_other_page_still_refuses_framing(client, link, alice):
    client.force_login(alice)
    assert "frame-ancestors 'none'" in client.get("/")["Content-Security-Policy"]


def test_a_disabled_or_unknown_link_is_a_404(client, api, flow, link):
    api("bob").patch(f"/api/flows/{flow.pk}/chat-links/{link['id']}", {"enabled": False})
    assert client.get(f"/c/{link['token']}/").status_code == 404
    assert say(client, link, "hi").status_code == 404
    assert client.get("/c/" + "A" * 43 + "/").status_code == 404
    assert not Run.objects.exists()


def test_the_embed_script_is_served_to_any_site(client):
    script = client.get("/c/embed.js")
    assert script.status_code == 200
    assert script["Content-Type"].startswith("text/javascript")
    assert b"data-chat" in script.content


# Turns


def test_a_message_starts_a_chat_run_of_the_published_version_as_the_links_maker(
    client, api, alice, flow, link
):
    services.save(flow, alice, CHAT, 1)  # v2, unpublished
    api("alice").put(f"/api/flows/{flow.pk}/published", {"version": 1})
    answer = say(client, link, "Hello")
    assert answer.status_code == 202, answer.content
    body = answer.json()
    assert "run" not in body["reply"]  # visitors see replies, not runs
    run = Run.objects.get()
    assert (run.trigger, run.flow_version.number, run.started_by.username) == ("chat", 1, "bob")
    assert run.inputs == {"chat": {"message": "Hello", "history": []}}
    assert body["stream"].endswith(f"/replies/{body['reply']['id']}/stream")
    assert body["visitor"]


def test_each_turn_gets_the_conversation_so_far(client, link):
    first = say(client, link, "I am Ada").json()
    visitor, conversation = first["visitor"], first["conversation"]
    finish(first["reply"]["id"], "Hello Ada")
    second = say(client, link, "I like tea", visitor, conversation).json()
    finish(second["reply"]["id"], "Tea is nice")
    third = say(client, link, "Who am I?", visitor, conversation).json()
    run = ChatMessage.objects.get(pk=third["reply"]["id"]).run
    assert run.inputs["chat"] == {
        "message": "Who am I?",
        "history": [
            {"role": "user", "content": "I am Ada"},
            {"role": "assistant", "content": "Hello Ada"},
            {"role": "user", "content": "I like tea"},
            {"role": "assistant", "content": "Tea is nice"},
        ],
    }


def test_a_failed_reply_is_left_out_of_the_history(client, link):
    first = say(client, link, "one").json()
    finish(first["reply"]["id"], None)
    second = say(client, link, "two", first["visitor"], first["conversation"]).json()
    run = ChatMessage.objects.get(pk=second["reply"]["id"]).run
    assert run.inputs["chat"]["history"] == [{"role": "user", "content": "one"}]


def test_a_message_before_the_last_reply_ended_is_refused(client, link):
    first = say(client, link, "one").json()
    again = say(client, link, "two", first["visitor"], first["conversation"])
    assert again.status_code == 409
    assert Run.objects.count() == 1


@pytest.mark.parametrize(
    "body, code",
    [
        ({"message": ""}, "bad_message"),
        ({"message": "x" * 4001}, "message_too_long"),
        ({"message": 5}, "bad_message"),
        ({"message": "x", "conversation": "1"}, "bad_conversation"),
    ],
)
def test_a_bad_message_is_refused_naming_why(client, link, body, code):
    answer = client.post(f"/c/{link['token']}/messages", body, content_type="application/json")
    assert answer.status_code == 400
    assert answer.json()["code"] == code
    assert not Run.objects.exists()


# Visitors


def test_a_visitor_cannot_read_or_continue_another_visitors_conversation(client, link):
    ada = say(client, link, "my secret is 42").json()
    eve = visitor_token("eve-key")
    conversation = ada["conversation"]
    base = f"/c/{link['token']}/conversations/{conversation}"
    mine = client.get(base, headers={"X-Chat-Visitor": ada["visitor"]})
    assert mine.status_code == 200
    assert mine.json()["messages"][0]["content"] == "my secret is 42"
    assert client.get(base, headers={"X-Chat-Visitor": eve}).status_code == 404
    stream = f"{base}/replies/{ada['reply']['id']}/stream"
    assert client.get(stream, headers={"X-Chat-Visitor": eve}).status_code == 404
    assert say(client, link, "hi", eve, conversation).status_code == 404
    assert client.get(base).status_code == 401
    forged = ada["visitor"][:-2] + "xx"
    assert client.get(base, headers={"X-Chat-Visitor": forged}).status_code == 401
    assert Run.objects.count() == 1


def test_a_conversation_is_reachable_through_its_own_link_only(client, api, flow, link):
    other = api("bob").post(f"/api/flows/{flow.pk}/chat-links", {"name": "Other"}).json()
    ada = say(client, link, "hello").json()
    url = f"/c/{other['token']}/conversations/{ada['conversation']}"
    assert client.get(url, headers={"X-Chat-Visitor": ada["visitor"]}).status_code == 404


def test_the_page_gives_a_signed_visitor_key_and_keeps_it_in_a_first_party_cookie(client, link):
    page = client.get(f"/c/{link['token']}/")
    cookie = page.cookies["sy_chat_visitor"]
    assert cookie["samesite"] == "Lax" and cookie["httponly"]
    token = re.search(rb'data-visitor="([^"]+)"', page.content).group(1).decode()
    again = client.get(f"/c/{link['token']}/")
    # The token is signed with a timestamp (django.core.signing.dumps): two pages a second
    # apart carry different tokens of the same visitor.
    token_again = re.search(rb'data-visitor="([^"]+)"', again.content).group(1).decode()
    assert visitor_from(token_again) == visitor_from(token) is not None


# Rates


def test_past_a_visitors_rate_the_answer_is_429_with_retry_after_and_starts_nothing(client, link):
    visitor = visitor_token("ada")
    for i in range(3):
        assert say(client, link, f"m{i}", visitor).status_code == 202
    refused = say(client, link, "one more", visitor)
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 61
    assert Run.objects.count() == 3
    # Another visitor still gets in.
    assert say(client, link, "hello", visitor_token("bea")).status_code == 202


def test_past_the_links_rate_every_visitor_gets_429(client, api, flow, link):
    api("bob").patch(f"/api/flows/{flow.pk}/chat-links/{link['id']}", {"per_minute": 2})
    assert say(client, link, "a", visitor_token("v1")).status_code == 202
    assert say(client, link, "b", visitor_token("v2")).status_code == 202
    refused = say(client, link, "c", visitor_token("v3"))
    assert refused.status_code == 429
    assert refused["Retry-After"]
    assert Run.objects.count() == 2


def test_a_link_whose_maker_lost_access_starts_nothing(client, link, team, bob):
    team.memberships.filter(user=bob).delete()
    assert say(client, link, "hi").status_code == 403
    assert not Run.objects.exists()


# Origins (CORS)


def test_an_allowed_origin_gets_cors_headers_and_another_is_refused(client, link):
    ok = say(client, link, "hi", Origin=HOST_ORIGIN)
    assert ok.status_code == 202, ok.content
    assert ok["Access-Control-Allow-Origin"] == HOST_ORIGIN
    refused = client.post(
        f"/c/{link['token']}/messages",
        {"message": "hi"},
        content_type="application/json",
        headers={"Origin": "http://evil.example"},
    )
    assert refused.status_code == 403
    assert refused.json()["code"] == "origin_not_allowed"
    assert "Access-Control-Allow-Origin" not in refused
    assert Run.objects.count() == 1


def test_a_preflight_from_an_allowed_origin_allows_the_visitor_header(client, link):
    answer = client.options(f"/c/{link['token']}/messages", headers={"Origin": HOST_ORIGIN})
    assert answer.status_code == 204
    assert answer["Access-Control-Allow-Origin"] == HOST_ORIGIN
    assert "X-Chat-Visitor" in answer["Access-Control-Allow-Headers"]
    other = client.options(f"/c/{link['token']}/messages", headers={"Origin": "http://x.example"})
    assert other.status_code == 403


# The editor's panel


def panel_say(client, flow, message: str, conversation=None):
    return client.post(
        f"/flows/{flow.pk}/chat/messages",
        {"message": message, "conversation": conversation},
        content_type="application/json",
    )


def test_the_panel_runs_the_newest_version_as_the_editor_and_links_the_run(
    client, api, alice, bob, flow
):
    services.save(flow, alice, CHAT, 1)  # v2
    api("alice").put(f"/api/flows/{flow.pk}/published", {"version": 1})
    client.force_login(bob)
    answer = panel_say(client, flow, "hi")
    assert answer.status_code == 202, answer.content
    body = answer.json()
    run = Run.objects.get()
    assert (run.trigger, run.flow_version.number, run.started_by.username) == ("editor", 2, "bob")
    assert body["reply"]["run"] == run.pk
    assert body["run_url"] == f"/runs/{run.pk}/"
    assert Conversation.objects.get().owner == bob


def test_the_editor_shows_the_chat_button_for_chat_flows_to_editors(client, bob, carol, flow):
    client.force_login(bob)
    assert b'data-testid="chat-toggle"' in client.get(f"/flows/{flow.pk}/").content
    client.force_login(carol)
    assert b'data-testid="chat-toggle"' not in client.get(f"/flows/{flow.pk}/").content


def test_viewers_and_strangers_cannot_use_the_panel(client, carol, dave, flow):
    client.force_login(carol)
    assert panel_say(client, flow, "hi").status_code == 403
    client.force_login(dave)
    assert panel_say(client, flow, "hi").status_code == 404
    assert not Run.objects.exists()


def test_a_panel_conversation_is_its_makers_only(client, alice, bob, flow):
    client.force_login(bob)
    mine = panel_say(client, flow, "hi").json()
    finish(mine["reply"]["id"], "hello")
    client.force_login(alice)
    assert panel_say(client, flow, "again", mine["conversation"]).status_code == 404
    assert client.get(mine["stream"]).status_code == 404


# The Chat links page


def test_an_editor_makes_a_link_on_the_page_and_sees_its_embed_snippet(client, bob, flow):
    client.force_login(bob)
    made = client.post(
        f"/flows/{flow.pk}/chat-links/",
        {
            "name": "Shop",
            "allowed_origins": "https://shop.example\nhttp://127.0.0.1:9000/",
            "per_minute": 30,
            "per_visitor_minute": 5,
        },
    )
    assert made.status_code == 302
    link = ChatLink.objects.get()
    assert link.allowed_origins == ["https://shop.example", "http://127.0.0.1:9000"]
    assert (link.per_minute, link.per_visitor_minute) == (30, 5)
    page = client.get(f"/flows/{flow.pk}/chat-links/").content.decode()
    assert f"data-chat=&quot;{link.token}&quot;" in page  # shown as text, escaped
    assert f"/c/{link.token}/" in page
    client.post(f"/flows/{flow.pk}/chat-links/{link.pk}/toggle/")
    link.refresh_from_db()
    assert not link.enabled


def test_the_page_refuses_a_bad_origin_naming_it(client, bob, flow):
    client.force_login(bob)
    answer = client.post(
        f"/flows/{flow.pk}/chat-links/",
        {
            "name": "x",
            "allowed_origins": "shop.example/path",
            "per_minute": 1,
            "per_visitor_minute": 1,
        },
    )
    assert answer.status_code == 400
    assert "shop.example/path" in answer.content.decode()
    assert not ChatLink.objects.exists()


def test_viewers_cannot_open_the_links_page_and_strangers_get_404(client, carol, dave, flow, link):
    client.force_login(carol)
    assert client.get(f"/flows/{flow.pk}/chat-links/").status_code == 403
    assert client.post(f"/flows/{flow.pk}/chat-links/{link['id']}/delete/").status_code == 403
    client.force_login(dave)
    assert client.get(f"/flows/{flow.pk}/chat-links/").status_code == 404
    assert client.post(f"/flows/{flow.pk}/chat-links/{link['id']}/delete/").status_code == 404
    assert ChatLink.objects.count() == 1
