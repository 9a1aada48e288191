"""Throttling failed sign-ins (per account name and per client address) and bad API
tokens (per address), on the log-in form, the API and the websockets.

Defaults (webapp/settings.py): 5 failures lock a name, 20 an address, within 15 minutes;
a lock lasts 5 minutes, twice as long for each lock in a row.
"""

from __future__ import annotations

import datetime as dt

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from webapp.accounts import throttle
from webapp.accounts.models import SignInFailures
from webapp.asgi import application
from webapp.flows import services

PASSWORD = "correct horse battery"
ACCOUNT_LOCKED = "Too many failed sign-ins for this account; try again in {} minutes."
ADDRESS_LOCKED = "Too many failed sign-ins from your network address; try again in {} minutes."
WRONG = "enter a correct username and password"


def sign_in(client: Client, username: str, password: str, address: str = "127.0.0.1"):
    return client.post("/login/", {"username": username, "password": password}, REMOTE_ADDR=address)


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


@pytest.fixture
def clock(monkeypatch):
    """Move throttle's clock forward: ``clock.advance(minutes=5)``."""

    class Clock:
        offset = dt.timedelta()

        def advance(self, **delta: float) -> None:
            self.offset += dt.timedelta(**delta)

    moved = Clock()
    real = throttle.now
    monkeypatch.setattr(throttle, "now", lambda: real() + moved.offset)
    return moved


# ---- The log-in form -------------------------------------------------------------------


def test_twenty_wrong_passwords_then_the_right_one_is_refused_with_the_message(client, alice):
    answers = [sign_in(client, "alice", f"guess {i}") for i in range(20)]
    assert [a.status_code for a in answers[:5]] == [200] * 5
    assert all(WRONG in a.content.decode() for a in answers[:5])
    assert [a.status_code for a in answers[5:]] == [429] * 15

    right = sign_in(client, "alice", PASSWORD)
    assert right.status_code == 429
    assert ACCOUNT_LOCKED.format(5) in right.content.decode()
    assert right["Retry-After"] == "300"
    assert not signed_in(client)


def test_a_lock_refuses_the_right_password_from_any_address(client, alice):
    for i in range(5):
        sign_in(client, "alice", f"guess {i}", address="203.0.113.7")
    elsewhere = sign_in(Client(), "alice", PASSWORD, address="198.51.100.1")
    assert elsewhere.status_code == 429
    assert ACCOUNT_LOCKED.format(5) in elsewhere.content.decode()


def test_another_account_from_the_same_address_is_throttled_after_the_address_limit(client, bob):
    # One wrong password each for twenty names: no name reaches its own limit.
    for i in range(20):
        assert sign_in(client, f"someone{i}", "guess").status_code == 200
    refused = sign_in(client, "bob", PASSWORD)
    assert refused.status_code == 429
    assert ADDRESS_LOCKED.format(5) in refused.content.decode()
    assert not signed_in(client)

    other = Client()
    assert sign_in(other, "bob", PASSWORD, address="198.51.100.1").status_code == 302
    assert signed_in(other)


def test_the_lock_expires_and_the_next_one_lasts_longer(client, alice, clock):
    for i in range(5):
        sign_in(client, "alice", f"guess {i}")
    assert sign_in(client, "alice", PASSWORD).status_code == 429

    clock.advance(minutes=4, seconds=59)
    assert sign_in(client, "alice", PASSWORD).status_code == 429
    clock.advance(seconds=2)
    for i in range(5):
        assert sign_in(client, "alice", f"again {i}").status_code == 200
    second = sign_in(client, "alice", PASSWORD)
    assert second.status_code == 429
    assert ACCOUNT_LOCKED.format(10) in second.content.decode()

    clock.advance(minutes=10, seconds=1)
    assert sign_in(client, "alice", PASSWORD).status_code == 302
    assert signed_in(client)


def test_the_lock_expires_when_its_stored_end_has_passed(client, alice):
    for i in range(5):
        sign_in(client, "alice", f"guess {i}")
    assert sign_in(client, "alice", PASSWORD).status_code == 429
    past = throttle.now() - dt.timedelta(seconds=1)
    SignInFailures.objects.filter(scope="account").update(locked_until=past)
    assert sign_in(client, "alice", PASSWORD).status_code == 302


def test_failures_outside_the_window_do_not_add_up(client, alice, clock):
    for i in range(4):
        sign_in(client, "alice", f"guess {i}")
    clock.advance(minutes=15, seconds=1)
    for i in range(4):
        assert sign_in(client, "alice", f"later {i}").status_code == 200
    assert sign_in(client, "alice", PASSWORD).status_code == 302


def test_a_successful_sign_in_resets_the_accounts_count(client, alice):
    for _ in range(3):
        for i in range(4):
            assert sign_in(client, "alice", f"guess {i}").status_code == 200
        assert sign_in(client, "alice", PASSWORD).status_code == 302
        client.post("/logout/")
    assert not SignInFailures.objects.filter(scope="account").exists()


def test_a_name_without_an_account_is_locked_exactly_like_one_with(client, alice):
    def lock(name: str) -> tuple[int, list[str]]:
        for i in range(5):
            sign_in(Client(), name, f"guess {i}", address=f"192.0.2.{len(name)}")
        answer = sign_in(Client(), name, "whatever", address=f"192.0.2.{len(name)}")
        return answer.status_code, answer.context["form"].non_field_errors()

    assert lock("alice") == lock("nobody-here") == (429, [ACCOUNT_LOCKED.format(5)])


def test_names_are_stored_only_as_hashes(client, db):
    sign_in(client, "hunter2-typed-in-the-wrong-box", "x")
    stored = list(SignInFailures.objects.values_list("key", flat=True))
    assert "127.0.0.1" in stored
    assert not any("hunter2" in key for key in stored)


def test_addresses_are_keyed_by_their_ipv6_64_block():
    assert throttle.address_key("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert throttle.address_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert throttle.address_key("::ffff:203.0.113.9") == "203.0.113.9"
    assert throttle.address_key("203.0.113.9") == "203.0.113.9"
    assert throttle.address_key(None) == "unknown"


# ---- The API ---------------------------------------------------------------------------


def api_get(token: str, address: str = "127.0.0.1"):
    return Client().get(
        "/api/flows", headers={"Authorization": f"Bearer {token}"}, REMOTE_ADDR=address
    )


def test_bad_bearer_tokens_get_429_after_the_limit(alice_token):
    assert [api_get(f"sy_guess{i}").status_code for i in range(20)] == [401] * 20

    refused = api_get("sy_guess-21")
    assert refused.status_code == 429
    assert refused["Retry-After"] == "300"
    assert refused["Content-Type"] == "application/problem+json"
    body = refused.json()
    assert (body["status"], body["code"]) == (429, "throttled")
    assert "try again in 300 s" in body["detail"]

    # Not even a real token is looked at from that address during the lock; elsewhere it is.
    assert api_get(alice_token).status_code == 429
    assert api_get(alice_token, address="198.51.100.1").status_code == 200


def test_bad_tokens_and_wrong_passwords_share_the_address_count(client, alice, alice_token):
    for i in range(10):
        api_get(f"sy_guess{i}")
    for i in range(10):
        sign_in(client, f"someone{i}", "guess")
    assert api_get(alice_token).status_code == 429
    assert ADDRESS_LOCKED.format(5) in sign_in(client, "alice", PASSWORD).content.decode()


def test_valid_tokens_count_nothing(alice_token):
    for _ in range(25):
        assert api_get(alice_token).status_code == 200
    assert not SignInFailures.objects.exists()


# ---- Websockets ------------------------------------------------------------------------


async def socket_opens(path: str, token: str) -> bool:
    # The test communicator's scope has no client address: it counts as "unknown".
    headers = [
        (b"origin", b"http://127.0.0.1:8000"),
        (b"host", b"127.0.0.1:8000"),
        (b"authorization", f"Bearer {token}".encode()),
    ]
    ws = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await ws.connect()
    if connected:
        await ws.disconnect()
    return connected


@pytest.mark.django_db(transaction=True)
async def test_a_locked_address_cannot_open_a_socket_even_with_a_valid_token(alice, alice_token):
    flow = await sync_to_async(services.create)(alice, "Mine", services.starter_graph("Mine"))
    path = f"/ws/flows/{flow.pk}/"
    assert await socket_opens(path, alice_token)
    for i in range(20):
        assert not await socket_opens(path, f"sy_guess{i}")
    assert not await socket_opens(path, alice_token)
    await sync_to_async(SignInFailures.objects.all().delete)()
    assert await socket_opens(path, alice_token)
