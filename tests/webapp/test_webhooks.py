"""Webhooks: alice's team flow has hooks; bob (editor) makes and manages them, carol (viewer)
and dave (stranger) cannot see them; a caller with the URL and the secret starts runs, and
every refusal starts nothing."""

from __future__ import annotations

import json
import re
import time

import pytest

from webapp.flows import services
from webapp.flows.models import Webhook, WebhookDelivery
from webapp.flows.webhooks.service import signature
from webapp.runs.models import Run

JSON = "application/json"


def greeting_flow() -> dict:
    return {
        "graph": {"name": "Greet"},
        "nodes": [
            {"id": "who", "type": "input", "config": {"name": "who"}},
            {"id": "tone", "type": "input", "config": {"name": "tone", "default": "warm"}},
            {
                "id": "say",
                "type": "template",
                "config": {"template": "Hello {{ who }} ({{ tone }})"},
            },
            {"id": "out", "type": "output", "config": {"name": "greeting"}},
        ],
        "edges": [
            {"source": "who", "target": "say", "source_port": "value", "target_port": "who"},
            {"source": "tone", "target": "say", "source_port": "value", "target_port": "tone"},
            {"source": "say", "target": "out", "source_port": "text", "target_port": "value"},
        ],
    }


@pytest.fixture
def flow(alice, team):
    return services.create(alice, "Greet", greeting_flow(), team=team)


@pytest.fixture
def made(api, flow):
    """A hook bob made through the API: its answer, secret included."""
    answer = api("bob").post(f"/api/flows/{flow.pk}/webhooks", {"name": "CI"})
    assert answer.status_code == 201, answer.content
    return answer.json()


def deliver(client, url: str, body: bytes, secret: str, ts: int | None = None, **headers):
    ts = int(time.time()) if ts is None else ts
    path = url.split("://", 1)[1].split("/", 1)[1]
    return client.post(
        "/" + path,
        body,
        content_type=JSON,
        headers={
            "X-Switchyard-Timestamp": str(ts),
            "X-Switchyard-Signature": signature(secret, ts, body),
            **headers,
        },
    )


# Making and managing hooks


def test_making_a_hook_shows_its_url_and_secret_once(api, flow, made):
    assert re.fullmatch(r"http://testserver/hooks/[A-Za-z0-9_-]{43}", made["url"])
    assert made["secret"].startswith("whsec_")
    listed = api("bob").get(f"/api/flows/{flow.pk}/webhooks").json()["items"]
    assert [h["url"] for h in listed] == [made["url"]]
    assert "secret" not in listed[0]
    assert made["secret"] not in json.dumps(listed)


def test_viewers_and_strangers_cannot_see_or_make_hooks(api, flow, made):
    hooks = f"/api/flows/{flow.pk}/webhooks"
    assert api("carol").get(hooks).status_code == 403
    assert api("carol").post(hooks, {"name": "x"}).status_code == 403
    assert api("dave").get(hooks).status_code == 404
    assert api("dave").post(f"{hooks}/{made['id']}/rotate").status_code == 404
    assert Webhook.objects.count() == 1


def test_rotating_gives_a_new_secret_and_the_old_one_stops_working(client, api, flow, made):
    rotated = api("bob").post(f"/api/flows/{flow.pk}/webhooks/{made['id']}/rotate").json()
    assert rotated["secret"] != made["secret"] and rotated["url"] == made["url"]
    body = b'{"who": "Ada"}'
    assert deliver(client, made["url"], body, made["secret"]).status_code == 401
    assert deliver(client, made["url"], body, rotated["secret"]).status_code == 202


def test_a_disabled_or_deleted_hook_answers_404_and_starts_nothing(client, api, flow, made):
    path = f"/api/flows/{flow.pk}/webhooks/{made['id']}"
    api("bob").patch(path, {"enabled": False})
    body = b'{"who": "Ada"}'
    assert deliver(client, made["url"], body, made["secret"]).status_code == 404
    assert api("bob").delete(path).status_code == 204
    assert deliver(client, made["url"], body, made["secret"]).status_code == 404
    assert not Run.objects.exists()


# Deliveries


def test_a_signed_delivery_starts_a_run_of_the_published_version_with_the_body_as_inputs(
    client, api, alice, flow, made
):
    services.save(flow, alice, greeting_flow(), 1)  # v2, unpublished
    api("alice").put(f"/api/flows/{flow.pk}/published", {"version": 1})
    body = json.dumps({"who": "Ada", "tone": "dry", "extra": {"ignored": True}}).encode()
    answer = deliver(client, made["url"], body, made["secret"])
    assert answer.status_code == 202, answer.content
    run = Run.objects.get(pk=answer.json()["id"])
    assert (run.flow_version.number, run.trigger, run.started_by.username) == (1, "webhook", "bob")
    assert run.inputs == {"who": "Ada", "tone": "dry"}
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.run_id) == (202, run.pk)


def test_the_input_map_renames_body_fields(client, api, flow, made):
    api("bob").patch(
        f"/api/flows/{flow.pk}/webhooks/{made['id']}", {"input_map": {"who": "sender"}}
    )
    answer = deliver(client, made["url"], b'{"sender": "Grace"}', made["secret"])
    assert Run.objects.get(pk=answer.json()["id"]).inputs["who"] == "Grace"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"X-Switchyard-Signature": "sha256=" + "0" * 64}, "does not match"),
        ({"X-Switchyard-Signature": ""}, "are required"),
        ({"X-Switchyard-Timestamp": "yesterday"}, "Unix seconds"),
    ],
)
def test_a_bad_signature_is_a_401_and_starts_nothing(client, flow, made, change, reason):
    answer = deliver(client, made["url"], b'{"who": "Ada"}', made["secret"], **change)
    assert answer.status_code == 401
    assert answer["Content-Type"] == "application/problem+json"
    assert reason in answer.json()["detail"]
    assert not Run.objects.exists()
    assert WebhookDelivery.objects.get().status == 401


def test_an_old_delivery_replayed_is_refused(client, flow, made):
    old = int(time.time()) - 301
    answer = deliver(client, made["url"], b'{"who": "Ada"}', made["secret"], ts=old)
    assert answer.status_code == 401
    assert "300 s" in answer.json()["detail"]
    assert not Run.objects.exists()


def test_a_tampered_body_is_refused(client, flow, made):
    ts = int(time.time())
    good = signature(made["secret"], ts, b'{"who": "Ada"}')
    path = "/" + made["url"].split("/", 3)[3]
    answer = client.post(
        path,
        b'{"who": "Eve"}',
        content_type=JSON,
        headers={"X-Switchyard-Timestamp": str(ts), "X-Switchyard-Signature": good},
    )
    assert answer.status_code == 401
    assert not Run.objects.exists()


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"[1, 2]", 400, "bad_json"),
        (b"{not json", 400, "bad_json"),
        (b"{}", 400, "invalid_inputs"),  # who is required
    ],
)
def test_a_body_that_makes_no_inputs_is_refused_naming_why(client, flow, made, body, status, code):
    answer = deliver(client, made["url"], body, made["secret"])
    assert (answer.status_code, answer.json()["code"]) == (status, code)
    assert not Run.objects.exists()


def test_past_the_hooks_rate_the_answer_is_429_with_retry_after(client, api, flow, made):
    api("bob").patch(f"/api/flows/{flow.pk}/webhooks/{made['id']}", {"per_minute": 2})
    answers = [deliver(client, made["url"], b'{"who": "Ada"}', made["secret"]) for _ in range(3)]
    assert [a.status_code for a in answers] == [202, 202, 429]
    assert 1 <= int(answers[2]["Retry-After"]) <= 60
    assert Run.objects.count() == 2


def test_unsigned_floods_do_not_use_up_the_callers_rate(client, api, flow, made):
    api("bob").patch(f"/api/flows/{flow.pk}/webhooks/{made['id']}", {"per_minute": 2})
    for _ in range(5):
        deliver(client, made["url"], b'{"who": "Eve"}', "not the secret")
    answer = deliver(client, made["url"], b'{"who": "Ada"}', made["secret"])
    assert answer.status_code == 202


def test_a_hook_whose_maker_lost_access_starts_nothing(client, flow, made, team, bob):
    team.memberships.filter(user=bob).delete()
    answer = deliver(client, made["url"], b'{"who": "Ada"}', made["secret"])
    assert (answer.status_code, answer.json()["code"]) == (403, "hook_owner_lost_access")
    assert not Run.objects.exists()


def test_a_token_outside_its_character_set_is_a_404(client, flow, made):
    assert client.post("/hooks/../../etc", b"{}", content_type=JSON).status_code == 404
    assert client.post("/hooks/" + "a" * 43, b"{}", content_type=JSON).status_code == 404


# The page


def test_an_editor_makes_a_hook_on_the_page_and_sees_its_secret_once(client, bob, flow):
    client.force_login(bob)
    made = client.post(f"/flows/{flow.pk}/webhooks/", {"name": "Zapier", "per_minute": 30})
    secret = Webhook.objects.get().secret
    assert secret in made.content.decode()
    again = client.get(f"/flows/{flow.pk}/webhooks/").content.decode()
    assert secret not in again
    assert "Zapier" in again and Webhook.objects.get().token in again


def test_the_page_lists_deliveries_with_their_runs(client, bob, flow, made):
    answer = deliver(client, made["url"], b'{"who": "Ada"}', made["secret"])
    run_id = answer.json()["id"]
    deliver(client, made["url"], b'{"who": "Ada"}', "wrong")
    client.force_login(bob)
    text = client.get(f"/flows/{flow.pk}/webhooks/").content.decode()
    assert f'href="/runs/{run_id}/"' in text
    assert "does not match" in text


def test_viewers_cannot_open_the_page_and_strangers_get_404(client, carol, dave, flow, made):
    client.force_login(carol)
    assert client.get(f"/flows/{flow.pk}/webhooks/").status_code == 403
    client.force_login(dave)
    assert client.get(f"/flows/{flow.pk}/webhooks/").status_code == 404
    assert client.post(f"/flows/{flow.pk}/webhooks/{made['id']}/delete/").status_code == 404
    assert Webhook.objects.count() == 1
