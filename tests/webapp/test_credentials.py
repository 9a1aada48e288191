"""The credentials store: encrypted at rest, write-only, used by the people and runs it
belongs to. Alice owns the team "Research", bob edits in it, carol views, dave is a
stranger. A planted secret is searched for everywhere a value could leak."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from io import StringIO

import pytest
from asgiref.sync import sync_to_async
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.test import Client

from tests.graphs.support import flow as document
from tests.graphs.support import node
from tests.support.http_server import Server, json_reply, serve
from tests.webapp.conftest import JSON
from webapp import env, execution
from webapp.accounts.models import ApiToken
from webapp.credentials import crypto, service
from webapp.credentials.models import Credential
from webapp.execution import plans
from webapp.flows import services
from webapp.runs.models import CacheEntry, Run, RunEvent

PLANTED = "sk-planted-5b1e-do-not-leak"


def create(api, who: str, **body):
    return api(who).post("/api/credentials", {"kind": "bearer", "value": PLANTED, **body})


# ---- At rest ----------------------------------------------------------------------------


def test_a_value_is_stored_encrypted_and_opens_with_the_key(alice):
    credential = service.create(alice, "github", "bearer", PLANTED)
    stored = Credential.objects.values_list("encrypted", flat=True).get(pk=credential.pk)
    assert PLANTED not in stored
    assert crypto.decrypt(stored) == PLANTED
    assert PLANTED not in str(credential) and PLANTED not in repr(credential)


def test_rotation_re_encrypts_with_the_first_key_so_the_old_one_can_go(alice, settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.CREDENTIAL_KEYS = [old]
    credential = service.create(alice, "github", "bearer", PLANTED)
    settings.CREDENTIAL_KEYS = [new, old]
    out = StringIO()
    call_command("rotate_credentials", stdout=out)
    assert out.getvalue().strip() == "re-encrypted 1 credential"
    credential.refresh_from_db()
    settings.CREDENTIAL_KEYS = [new]
    assert crypto.decrypt(credential.encrypted) == PLANTED
    settings.CREDENTIAL_KEYS = [old]
    with pytest.raises(crypto.KeyMissing):
        crypto.decrypt(credential.encrypted)


def test_keys_from_the_environment_fail_loudly_and_never_echo_a_key(monkeypatch):
    good = Fernet.generate_key().decode()
    monkeypatch.setenv("SWITCHYARD_CREDENTIAL_KEYS", f"{good}, not-a-key-{PLANTED}")
    with pytest.raises(ImproperlyConfigured) as refused:
        env.fernet_keys("SWITCHYARD_CREDENTIAL_KEYS", None)
    assert "key 2 of 2 is not a Fernet key" in str(refused.value)
    assert PLANTED not in str(refused.value) and good not in str(refused.value)
    monkeypatch.delenv("SWITCHYARD_CREDENTIAL_KEYS")
    with pytest.raises(ImproperlyConfigured, match="SWITCHYARD_CREDENTIAL_KEYS must be set"):
        env.fernet_keys("SWITCHYARD_CREDENTIAL_KEYS", None)
    derived = env.fernet_keys("SWITCHYARD_CREDENTIAL_KEYS", "debug secret")
    assert derived == env.fernet_keys("SWITCHYARD_CREDENTIAL_KEYS", "debug secret")
    Fernet(derived[0].encode())  # a real key
    monkeypatch.setenv("SWITCHYARD_CREDENTIAL_KEYS", good)
    assert env.fernet_keys("SWITCHYARD_CREDENTIAL_KEYS", "debug secret") == [good]


# ---- The API ----------------------------------------------------------------------------


def test_the_value_is_write_only_in_every_answer(api, alice, team):
    made = create(api, "alice", name="github")
    assert made.status_code == 201, made.content
    assert made.json()["name"] == "github" and made.json()["kind"] == "bearer"
    team_made = create(api, "alice", name="billing", team=team.pk, kind="api_key", header="X-Key")
    assert team_made.status_code == 201, team_made.content
    listed = api("alice").get("/api/credentials")
    assert [(c["name"], c["team"]) for c in listed.json()["items"]] == [
        ("github", None),
        ("billing", team.pk),
    ]
    for response in (made, team_made, listed, api("bob").get("/api/credentials")):
        assert PLANTED not in response.content.decode()
        assert "value" not in response.content.decode()


def test_team_editors_see_names_only_owners_change_and_strangers_learn_nothing(
    api, alice, bob, carol, dave, team
):
    made = create(api, "alice", name="billing", team=team.pk).json()
    names = {who: api(who).get("/api/credentials").json()["items"] for who in ("bob", "carol")}
    assert [(c["name"], c["can_change"]) for c in names["bob"]] == [("billing", False)]
    assert names["carol"] == [] and api("dave").get("/api/credentials").json()["items"] == []
    # Making one for the team: owners only; a stranger is told the team does not exist.
    statuses = {w: create(api, w, name="x", team=team.pk).status_code for w in ("bob", "carol")}
    assert statuses == {"bob": 403, "carol": 403}
    assert create(api, "dave", name="x", team=team.pk).status_code == 404
    # Deleting: the same.
    path = f"/api/credentials/{made['id']}"
    deletes = {w: api(w).delete(path).status_code for w in ("dave", "carol", "bob")}
    assert deletes == {"dave": 404, "carol": 403, "bob": 403}
    assert api("alice").delete(path).status_code == 204
    assert not Credential.objects.exists()


def test_a_personal_credential_is_its_owners_alone(api, alice, bob, team):
    made = create(api, "alice", name="mine").json()
    assert api("bob").get("/api/credentials").json()["items"] == []
    assert api("bob").delete(f"/api/credentials/{made['id']}").status_code == 404
    # Bob may have his own of the same name.
    assert create(api, "bob", name="mine").status_code == 201


def test_bad_names_kinds_and_values_are_refused_without_echoing_the_value(api, alice):
    assert create(api, "alice", name="github").status_code == 201
    again = create(api, "alice", name="github")
    assert again.status_code == 400 and "already have a credential named github" in again.text
    assert create(api, "alice", name="has space").status_code == 422
    assert create(api, "alice", name="k", kind="password").status_code == 422
    basic = create(api, "alice", name="b", kind="basic")
    assert basic.status_code == 400 and basic.json()["errors"][0]["path"] == "body.value"
    headers = create(api, "alice", name="h", kind="headers")
    injected = api("alice").post(
        "/api/credentials", {"name": "n", "kind": "bearer", "value": f"a\r\nX-Evil: {PLANTED}"}
    )
    for response in (basic, headers, injected):
        assert response.status_code == 400, response.content
        assert PLANTED not in response.content.decode()


# ---- The page ---------------------------------------------------------------------------


def page_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_page_adds_lists_and_deletes_and_never_renders_a_value(alice, bob, team):
    client = page_client(alice)
    added = client.post(
        "/settings/credentials/new/",
        {"name": "billing", "kind": "bearer", "value": PLANTED, "team": str(team.pk)},
        follow=True,
    )
    assert added.status_code == 200
    html = added.content.decode()
    assert 'data-testid="credential-billing"' in html and "Research" in html
    assert PLANTED not in html
    refused = client.post(
        "/settings/credentials/new/", {"name": "bad name", "kind": "bearer", "value": PLANTED}
    )
    assert refused.status_code == 400
    assert 'data-testid="error-name"' in refused.content.decode()
    assert PLANTED not in refused.content.decode()
    # Bob sees its name, but no delete button; his delete is refused.
    bobs = page_client(bob).get("/settings/credentials/").content.decode()
    assert 'data-testid="credential-billing"' in bobs and "Delete billing" not in bobs
    credential = Credential.objects.get()
    path = f"/settings/credentials/{credential.pk}/delete/"
    assert page_client(bob).post(path).status_code == 403
    assert client.post(path).status_code == 302
    assert not Credential.objects.exists()


# ---- A run that uses one ----------------------------------------------------------------


@pytest.fixture
def upstream() -> Iterator[Server]:
    # Answers without echoing what it got; what it got is read from `seen`.
    with serve({"/items": lambda s: json_reply({"ok": True})}) as server:
        yield server


@pytest.fixture
def allow_listed(monkeypatch, upstream):
    monkeypatch.setenv("SWITCHYARD_HTTP_NODE_ENABLED", "1")
    monkeypatch.setenv("SWITCHYARD_HTTP_ALLOW_HOSTS", f"127.0.0.1:{upstream.port}")
    plans.engine_services.cache_clear()
    yield
    plans.engine_services.cache_clear()


def authed_flow(url: str, auth: str) -> dict:
    return {
        "graph": {"name": "Authed call"},
        "nodes": [
            {"id": "item", "type": "input", "config": {"name": "item"}},
            # Cached on purpose: the cache key must not hold the secret either.
            {"id": "call", "type": "http", "config": {"url": url, "auth": auth, "cache": True}},
            {"id": "out", "type": "output", "config": {"name": "body"}},
        ],
        "edges": [
            {"source": "item", "target": "call", "source_port": "value", "target_port": "item"},
            {"source": "call", "target": "out", "source_port": "body", "target_port": "value"},
        ],
    }


@sync_to_async
def stored_text(run_id: int, flow_id: int) -> str:
    """Everything stored of a run and its flow, as text."""
    run = Run.objects.get(pk=run_id)
    events = list(RunEvent.objects.filter(run_id=run_id).values_list("payload", flat=True))
    cached = list(CacheEntry.objects.values())
    versions = [v.graph for v in run.flow.versions.all()]
    return json.dumps([run.outputs, run.error, run.graph, events, cached, versions], default=str)


@pytest.mark.django_db(transaction=True)
async def test_a_team_run_sends_the_teams_secret_and_it_leaks_nowhere(
    async_client, alice, bob, team, upstream, allow_listed, caplog
):
    caplog.set_level(logging.DEBUG)
    await sync_to_async(service.create)(alice, "billing", "bearer", PLANTED, team.pk)
    doc = authed_flow(upstream.url("/items?id={{ item }}"), "billing")
    flow = await sync_to_async(services.create)(alice, "Authed", doc, team=team)
    token = (await sync_to_async(ApiToken.issue)(bob, "t"))[1]
    headers = {"Authorization": f"Bearer {token}"}
    started = await async_client.post(
        f"/api/flows/{flow.pk}/runs", {"inputs": {"item": "7"}}, content_type=JSON, headers=headers
    )
    assert started.status_code == 201, started.content
    run_id = started.json()["id"]
    await execution.driver().wait_idle()
    answer = await async_client.get(f"/api/runs/{run_id}", headers=headers)
    assert answer.json()["status"] == "succeeded", answer.json()["error"]
    assert answer.json()["outputs"] == {"body": {"ok": True}}
    [seen] = upstream.seen
    assert seen.headers["authorization"] == f"Bearer {PLANTED}"
    events = await async_client.get(f"/api/runs/{run_id}/events", headers=headers)
    exported = await async_client.get(f"/api/flows/{flow.pk}/export", headers=headers)
    detail = await async_client.get(f"/api/flows/{flow.pk}", headers=headers)
    assert events.status_code == exported.status_code == detail.status_code == 200
    assert '"auth": "billing"' in exported.content.decode()
    for text in (
        answer.content.decode(),
        events.content.decode(),
        exported.content.decode(),
        detail.content.decode(),
        await stored_text(run_id, flow.pk),
        caplog.text,
    ):
        assert PLANTED not in text


@pytest.mark.django_db(transaction=True)
async def test_a_personal_flow_cannot_reach_a_teams_credential(
    async_client, alice, team, upstream, allow_listed
):
    await sync_to_async(service.create)(alice, "billing", "bearer", PLANTED, team.pk)
    doc = authed_flow(upstream.url("/items?id={{ item }}"), "billing")
    flow = await sync_to_async(services.create)(alice, "Mine", doc)
    token = (await sync_to_async(ApiToken.issue)(alice, "t"))[1]
    headers = {"Authorization": f"Bearer {token}"}
    started = await async_client.post(
        f"/api/flows/{flow.pk}/runs", {"inputs": {"item": "7"}}, content_type=JSON, headers=headers
    )
    assert started.status_code == 201, started.content
    await execution.driver().wait_idle()
    answer = (await async_client.get(f"/api/runs/{started.json()['id']}", headers=headers)).json()
    assert answer["status"] == "failed"
    assert "no credential named 'billing' is available to this run" in answer["error"]
    assert upstream.seen == []


# ---- A team's own Anthropic key ---------------------------------------------------------


def model_flow() -> dict:
    return {
        "graph": {"name": "Ask"},
        "nodes": [
            {"id": "question", "type": "input", "config": {"name": "question"}},
            {"id": "ask", "type": "llm", "config": {"prompt": "{{ question }}", "cache": False}},
            {"id": "out", "type": "output", "config": {"name": "answer"}},
        ],
        "edges": [
            {
                "source": "question",
                "target": "ask",
                "source_port": "value",
                "target_port": "question",
            },
            {"source": "ask", "target": "out", "source_port": "text", "target_port": "value"},
        ],
    }


@pytest.fixture
def no_server_key(anthropic_env, monkeypatch):
    """The fake Messages API, and no server-wide key: the server alone would be offline."""
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    plans.engine_services.cache_clear()
    yield anthropic_env
    plans.engine_services.cache_clear()


async def start(async_client, user, flow) -> dict:
    token = (await sync_to_async(ApiToken.issue)(user, "t"))[1]
    headers = {"Authorization": f"Bearer {token}"}
    started = await async_client.post(
        f"/api/flows/{flow.pk}/runs",
        {"inputs": {"question": "hi"}},
        content_type=JSON,
        headers=headers,
    )
    assert started.status_code == 201, started.content
    await execution.driver().wait_idle()
    return (await async_client.get(f"/api/runs/{started.json()['id']}", headers=headers)).json()


@pytest.mark.django_db(transaction=True)
async def test_a_teams_anthropic_key_makes_its_runs_model_calls(
    async_client, alice, bob, dave, team, no_server_key
):
    fake = no_server_key
    await sync_to_async(service.create)(alice, "claude", "anthropic_key", PLANTED, team.pk)
    flow = await sync_to_async(services.create)(alice, "Ask", model_flow(), team=team)
    answer = await start(async_client, bob, flow)
    assert answer["status"] == "succeeded", answer["error"]
    [request] = fake.requests
    # This SDK sends the key as x-api-key or as a bearer token, by version.
    sent = request.headers.get("x-api-key", "") + request.headers.get("authorization", "")
    assert PLANTED in sent
    assert PLANTED not in json.dumps(answer)
    assert PLANTED not in await stored_text(answer["id"], flow.pk)
    # Dave's own flow has no key of his: the offline model, as the server alone would.
    mine = await sync_to_async(services.create)(dave, "Mine", model_flow())
    offline = await start(async_client, dave, mine)
    assert offline["status"] == "succeeded", offline["error"]
    assert len(fake.requests) == 1


@pytest.mark.django_db
def test_the_offline_banner_goes_once_the_team_has_a_key_of_its_own(
    alice, bob, dave, team, no_server_key
):
    team_flow = services.create(alice, "Ask", model_flow(), team=team)
    mine = services.create(dave, "Mine", model_flow())
    banner = b'data-testid="offline-model-banner"'

    def shows_banner(user, flow) -> bool:
        page = page_client(user).get(f"/flows/{flow.pk}/")
        assert page.status_code == 200
        return banner in page.content

    assert shows_banner(bob, team_flow)
    service.create(alice, "claude", "anthropic_key", PLANTED, team.pk)
    # Bob's runs of the team's flow call with the team's key: no banner for it...
    assert not shows_banner(bob, team_flow)
    # ...while dave's own flow would still get canned replies.
    assert shows_banner(dave, mine)


# ---- A called flow uses its own ---------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_called_team_flow_uses_its_teams_credential_not_its_callers(
    api, alice, team, upstream, allow_listed, monkeypatch
):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    service.create(alice, "billing", "bearer", PLANTED, team.pk)
    service.create(alice, "billing", "bearer", "alices-own-token")
    child = document(
        node("text", "input", name="text"),
        node("call", "http", url=upstream.url("/items?id={{ text }}"), auth="billing"),
        node("loud", "output", name="loud"),
        edges=[("text", "value", "call", "text"), ("call", "body", "loud", "value")],
        name="child",
    )
    child_flow = services.create(alice, "child", child, team=team)
    parent = document(
        node("q", "input", name="q"),
        node("call", "subflow", flow=str(child_flow.pk)),
        node("out", "output", name="a"),
        edges=[("q", "value", "call", "text"), ("call", "loud", "out", "value")],
        name="caller",
    )
    parent_flow = services.create(alice, "caller", parent)
    started = api("alice").post(f"/api/flows/{parent_flow.pk}/runs", {"inputs": {"q": "7"}})
    assert started.status_code == 201, started.content
    asyncio.run(execution.driver().wait_idle())
    run = Run.objects.get(pk=started.json()["id"])
    assert run.status == "succeeded", run.error
    [seen] = upstream.seen
    assert seen.headers["authorization"] == f"Bearer {PLANTED}"


# ---- The http node's form ---------------------------------------------------------------


def test_the_http_form_offers_editors_the_teams_credential_names_and_viewers_none(
    alice, bob, carol, team
):
    service.create(alice, "billing", "bearer", PLANTED, team.pk)
    service.create(alice, "alices_own", "bearer", PLANTED)
    service.create(alice, "claude", "anthropic_key", PLANTED, team.pk)
    flow = services.create(alice, "Team", services.starter_graph("Team"), team=team)

    def form(user) -> str:
        body = {"type": "http", "node_id": "call", "config": '{"url": "https://x.example/"}'}
        return page_client(user).post(f"/flows/{flow.pk}/node-form/", body).content.decode()

    offered = form(bob)
    assert 'data-testid="choices-auth"' in offered
    assert '<option value="billing">' in offered
    # Not a personal one (a run of a team flow is not lent it), nor a model key.
    assert "alices_own" not in offered and "claude" not in offered
    assert PLANTED not in offered
    viewed = form(carol)
    assert 'name="f_auth"' in viewed and "billing" not in viewed
