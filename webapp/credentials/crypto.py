"""Encryption at rest of credential values: MultiFernet over ``settings.CREDENTIAL_KEYS``.

The first key encrypts; every key decrypts, so a new key is put first, the values are
re-encrypted (``manage.py rotate_credentials``), and only then is the old key dropped.
"""

from __future__ import annotations

from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class KeyMissing(RuntimeError):
    """A stored value that none of the configured keys opens (a key dropped too early)."""


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in keys])


def fernet() -> MultiFernet:
    # Keyed by the setting's value: a test that overrides the keys gets its own.
    return _fernet(tuple(settings.CREDENTIAL_KEYS))


def encrypt(value: str) -> str:
    return fernet().encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise KeyMissing(
            "a credential cannot be decrypted with SWITCHYARD_CREDENTIAL_KEYS: "
            "was a key removed before rotate_credentials ran?"
        ) from None


def rotate(token: str) -> str:
    """The same value, encrypted with the first key."""
    try:
        return fernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise KeyMissing("a credential cannot be decrypted with any configured key") from None
