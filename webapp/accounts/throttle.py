"""Throttling of failed sign-ins and of bad API tokens, per account and per client address.

Two counters, each in a time window (``LOGIN_WINDOW_S``):

- per account name: ``LOGIN_ACCOUNT_FAILURES`` wrong passwords lock that name;
- per client address: ``LOGIN_ADDRESS_FAILURES`` failures (wrong passwords for any
  names, and bearer tokens that match nothing) lock the address.

A lock lasts ``LOGIN_LOCK_S``, twice as long for each lock in a row, up to
``LOGIN_LOCK_MAX_S``; a day without failures forgets the row. While a lock holds nothing
is checked, so even the right password (or a valid token) is refused: otherwise every
guess would still get its answer. A successful sign-in clears its account's counter, not
the address's, or an attacker could reset their own address with an account of their own.
A name is counted whether or not an account has it, so a lock says nothing about which
names exist.

Why our own module rather than django-axes: axes hooks ``authenticate()`` and its
signals, which bearer tokens never pass through, and its lock-out is a fixed cool-off
where we want a growing one. Why the database rather than the cache: several Daphne
processes (and machines) must see the same counts, and the database is the one store
every deployment has (the embedded default has no Redis); a failure costs one row
update, a check one indexed read.

The client address is ``REMOTE_ADDR``, which Daphne sets from X-Forwarded-For when run
with ``--proxy-headers`` (as the Procfile does). An IPv6 address counts as its /64, the
block one subscriber is usually given.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import math

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone

from webapp.accounts.models import SignInFailures

ACCOUNT = SignInFailures.Scope.ACCOUNT
ADDRESS = SignInFailures.Scope.ADDRESS
# Quiet for this long, a counter starts again from nothing (its lock streak included).
FORGET_AFTER = dt.timedelta(days=1)


def now() -> dt.datetime:
    """The clock every decision here reads (tests move it)."""
    return timezone.now()


class Throttled(Exception):
    """Too many failures: ``scope`` says whose (account or address), ``retry_after`` how
    many seconds the lock still holds."""

    def __init__(self, scope: str, retry_after: int) -> None:
        self.scope = scope
        self.retry_after = max(1, retry_after)
        super().__init__(self.message)

    @property
    def minutes(self) -> int:
        return max(1, math.ceil(self.retry_after / 60))

    @property
    def wait(self) -> str:
        return f"{self.minutes} minute{'s' if self.minutes != 1 else ''}"

    @property
    def message(self) -> str:
        if self.scope == ACCOUNT:
            return f"Too many failed sign-ins for this account; try again in {self.wait}."
        return f"Too many failed sign-ins from your network address; try again in {self.wait}."

    @property
    def api_detail(self) -> str:
        return (
            "too many failed sign-ins and unknown tokens from this address; "
            f"try again in {self.retry_after} s"
        )


# ---- Keys ------------------------------------------------------------------------------


def account_key(username: str) -> str:
    # Case folded: "Alice" and "alice" share one counter whatever the backend makes of case.
    return hashlib.sha256(username.strip().casefold().encode()).hexdigest()


def address_key(address: str | None) -> str:
    """e.g. ``203.0.113.9``; an IPv6 address as its /64; anything unparseable as itself."""
    raw = (address or "").strip()
    try:
        ip = ipaddress.ip_address(raw)
    except ValueError:
        return raw[:64] or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def request_address(request: HttpRequest) -> str:
    return address_key(request.META.get("REMOTE_ADDR"))


def scope_address(scope: dict) -> str:
    """The client address of an ASGI (websocket) scope."""
    client = scope.get("client") or (None,)
    return address_key(client[0])


# ---- Checking and counting -------------------------------------------------------------


def check(*, account: str | None = None, address: str) -> None:
    """Raise Throttled when the account name (if given) or the address is locked.

    The account's lock is reported first: it is the one its owner can do something about.
    """
    at = now()
    keys = Q(scope=ADDRESS, key=address)
    if account is not None:
        keys |= Q(scope=ACCOUNT, key=account_key(account))
    locks = dict(
        SignInFailures.objects.filter(keys, locked_until__gt=at).values_list(
            "scope", "locked_until"
        )
    )
    for scope in (ACCOUNT, ADDRESS):
        if scope in locks:
            raise Throttled(scope, math.ceil((locks[scope] - at).total_seconds()))


def failed(*, account: str | None = None, address: str) -> None:
    """Count one failure against the account name (if given) and the address."""
    at = now()
    if account is not None:
        _count(ACCOUNT, account_key(account), settings.LOGIN_ACCOUNT_FAILURES, at)
    _count(ADDRESS, address, settings.LOGIN_ADDRESS_FAILURES, at)
    # Unbounded names would otherwise leave a row each; quiet rows are worth nothing.
    SignInFailures.objects.filter(last_failure__lt=at - FORGET_AFTER).filter(
        Q(locked_until__isnull=True) | Q(locked_until__lt=at)
    ).delete()


def signed_in(account: str) -> None:
    """The right password: the account's failures (and lock streak) are forgotten."""
    SignInFailures.objects.filter(scope=ACCOUNT, key=account_key(account)).delete()


def lock_duration(lockouts: int) -> dt.timedelta:
    """How long the lock after `lockouts` earlier ones in a row lasts."""
    seconds = settings.LOGIN_LOCK_S * 2 ** min(lockouts, 20)
    return dt.timedelta(seconds=min(seconds, settings.LOGIN_LOCK_MAX_S))


def _count(scope: str, key: str, limit: int, at: dt.datetime) -> None:
    window = dt.timedelta(seconds=settings.LOGIN_WINDOW_S)
    with transaction.atomic():
        # Locked (FOR UPDATE on PostgreSQL; SQLite's IMMEDIATE transactions serialise
        # writers), so concurrent failures on several processes all count.
        row, _ = SignInFailures.objects.select_for_update().get_or_create(
            scope=scope, key=key, defaults={"window_start": at, "last_failure": at}
        )
        if row.last_failure < at - FORGET_AFTER:
            row.lockouts = 0
        if row.window_start <= at - window:
            row.failures, row.window_start = 0, at
        row.failures += 1
        row.last_failure = at
        if row.failures >= max(1, limit):
            row.locked_until = at + lock_duration(row.lockouts)
            row.lockouts += 1
            # The next window opens when the lock ends: another `limit` tries, then a
            # longer lock.
            row.failures, row.window_start = 0, row.locked_until
        row.save()
