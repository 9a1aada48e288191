"""Sign-up, log-in, log-out, and API tokens on the settings page."""

from __future__ import annotations

import re
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.urls import reverse

from webapp.accounts.models import ApiToken, hash_token
from webapp.accounts.tokens import user_for_token
from webapp.flows.models import Flow

PASSWORD = "correct horse battery"
RAW_TOKEN = re.compile(r"sy_[A-Za-z0-9_-]{20,}")


def signup_data(username: str = "dora", **extra) -> dict[str, str]:
    return {
        "username": username,
        "email": "",
        "password1": PASSWORD,
        "password2": PASSWORD,
        **extra,
    }


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


# ---- Sign-up ------------------------------------------------------------------


def test_signup_page_shows_the_form(client, db):
    response = client.get(reverse("signup"))
    assert response.status_code == 200
    for name in ("username", "email", "password1", "password2"):
        assert f'name="{name}"' in response.content.decode()


def test_signup_creates_the_user_logs_in_and_gives_the_examples(client, db):
    response = client.post(reverse("signup"), signup_data())

    assert response.status_code == 302
    assert response.url == reverse("flow_list")
    user = get_user_model().objects.get(username="dora")
    assert user.email == ""  # email is optional
    assert user.check_password(PASSWORD)
    assert client.session["_auth_user_id"] == str(user.pk)
    examples = sorted(Path(django_settings.EXAMPLES_DIR).glob("*.json"))
    assert len(examples) >= 8
    flows = Flow.objects.filter(owner=user)
    assert flows.count() == len(examples)
    assert {"Calculator agent", "Draft, critique, revise"} <= set(
        flows.values_list("name", flat=True)
    )


def test_each_new_users_examples_are_stored_as_checked_for_them_calling_their_own_copies(db):
    from webapp.flows import services
    from webapp.flows.examples import calls, named_examples, with_ids

    users = [get_user_model().objects.create_user(name) for name in ("bob", "carol")]
    examples = dict(named_examples())
    for user in users:
        flows = {flow.name: flow for flow in Flow.objects.filter(owner=user)}
        ids = {slug: flows[doc["graph"]["name"]].pk for slug, doc in examples.items()}
        assert len(flows) == len(examples)
        for document in examples.values():
            version = flows[document["graph"]["name"]].current()
            # As services.create would have stored it for this user.
            expected = services.check_graph(with_ids(document, ids), user)
            assert (version.number, version.author, version.message) == (1, user, "example")
            assert version.graph == expected.document
            assert version.problems == expected.problems_json()
        agent = flows[examples["agent_flow"]["graph"]["name"]].current().graph
        tools = next(node["config"]["tools"] for node in agent["nodes"] if node["type"] == "agent")
        assert f"flow:{ids['classify']}" in tools and calls(examples["agent_flow"])


def test_signup_keeps_an_email_when_given(client, db):
    client.post(reverse("signup"), signup_data(email="dora@example.com"))
    assert get_user_model().objects.get(username="dora").email == "dora@example.com"


def test_signup_applies_the_password_validators(client, db):
    response = client.post(
        reverse("signup"), signup_data(password1="password", password2="password")
    )
    assert response.status_code == 200
    assert "too common" in response.content.decode()
    assert not get_user_model().objects.filter(username="dora").exists()


def test_signup_refuses_mismatched_passwords(client, db):
    response = client.post(reverse("signup"), signup_data(password2="something else entirely"))
    assert response.status_code == 200
    assert response.context["form"].has_error("password2", "password_mismatch")
    assert not get_user_model().objects.filter(username="dora").exists()


def test_signup_refuses_a_taken_username(client, alice):
    response = client.post(reverse("signup"), signup_data(username="Alice"))
    assert response.status_code == 200
    assert get_user_model().objects.filter(username__iexact="alice").count() == 1


def test_login_page_links_to_signup_when_enabled(client, db):
    response = client.get(reverse("login"))
    assert f'href="{reverse("signup")}"' in response.content.decode()


def test_signup_disabled_is_404_and_the_login_page_hides_the_link(client, db, settings):
    settings.SIGNUP_ENABLED = False

    assert client.get("/signup/").status_code == 404
    assert client.post("/signup/", signup_data()).status_code == 404
    assert not get_user_model().objects.filter(username="dora").exists()
    login_page = client.get(reverse("login")).content.decode()
    assert "/signup/" not in login_page


# ---- Log-in and log-out ---------------------------------------------------------


def test_login_page_has_username_password_and_submit(client, db):
    html = client.get("/login/").content.decode()
    assert 'name="username"' in html
    assert 'name="password"' in html
    assert 'type="submit"' in html


def test_login_works(client, alice):
    response = client.post("/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    assert response.url == reverse("flow_list")
    assert client.session["_auth_user_id"] == str(alice.pk)


def test_login_follows_next(client, alice):
    response = client.post(
        "/login/?next=/settings/", {"username": "alice", "password": PASSWORD, "next": "/settings/"}
    )
    assert response.url == "/settings/"


def test_login_with_a_wrong_password_says_so(client, alice):
    response = client.post("/login/", {"username": "alice", "password": "wrong"})
    assert response.status_code == 200
    assert "enter a correct username and password" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_logout_is_a_post(alice_client):
    assert alice_client.get("/logout/").status_code == 405
    response = alice_client.post("/logout/")
    assert response.status_code == 302
    assert response.url == reverse("login")
    assert "_auth_user_id" not in alice_client.session


# ---- Settings and API tokens ------------------------------------------------------


def test_settings_needs_login(client, db):
    response = client.get("/settings/")
    assert response.status_code == 302
    assert response.url == "/login/?next=/settings/"


def test_token_create_shows_the_raw_token_once_and_stores_only_a_hash(alice_client, alice):
    response = alice_client.post(reverse("token_create"), {"name": "laptop"})

    assert response.status_code == 200
    html = response.content.decode()
    raw = RAW_TOKEN.search(html).group()
    assert "Copy" in html
    token = ApiToken.objects.get(user=alice, name="laptop")
    assert token.digest == hash_token(raw)
    assert token.hint == raw[:10]
    stored = [str(value) for value in ApiToken.objects.filter(pk=token.pk).values().get().values()]
    assert not any(raw in value for value in stored)
    assert user_for_token(raw) == alice

    later = alice_client.get(reverse("settings")).content.decode()
    assert raw not in later
    assert "laptop" in later
    assert token.hint in later


def test_token_create_needs_a_name(alice_client, alice):
    response = alice_client.post(reverse("token_create"), {"name": "  "})
    assert response.status_code == 200
    assert "This field is required" in response.content.decode()
    assert not ApiToken.objects.filter(user=alice).exists()


def test_token_create_is_a_post(alice_client):
    assert alice_client.get(reverse("token_create")).status_code == 405


def test_settings_lists_only_my_tokens(alice_client, alice, charlie):
    ApiToken.issue(alice, "ci")
    ApiToken.issue(charlie, "charlies-secret-box")
    html = alice_client.get(reverse("settings")).content.decode()
    assert ">ci<" in html
    assert "never" in html  # last used
    assert "charlies-secret-box" not in html


def test_revoke_asks_for_confirmation_then_revokes(alice_client, alice):
    token, raw = ApiToken.issue(alice, "old laptop")
    url = reverse("token_revoke", args=[token.pk])

    confirm = alice_client.get(url)
    assert confirm.status_code == 200
    assert "old laptop" in confirm.content.decode()
    assert ApiToken.objects.filter(pk=token.pk).exists()

    response = alice_client.post(url)
    assert response.status_code == 302
    assert response.url == reverse("settings")
    assert not ApiToken.objects.filter(pk=token.pk).exists()
    assert user_for_token(raw) is None


def test_a_stranger_cannot_revoke_someone_elses_token(client, alice, charlie):
    token, raw = ApiToken.issue(alice, "alice's")
    client.force_login(charlie)
    url = reverse("token_revoke", args=[token.pk])

    assert client.get(url).status_code == 404
    assert client.post(url).status_code == 404
    assert user_for_token(raw) == alice


def test_apitoken_command_prints_a_token_that_authenticates(alice):
    out = StringIO()
    call_command("apitoken", "alice", stdout=out)
    raw = out.getvalue().strip()
    assert RAW_TOKEN.fullmatch(raw)
    assert user_for_token(raw) == alice
    assert ApiToken.objects.get(user=alice).name == "command line"


def test_apitoken_command_refuses_an_unknown_user(db):
    with pytest.raises(CommandError, match="no user named"):
        call_command("apitoken", "nobody", stdout=StringIO())
