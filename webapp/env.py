"""Settings read from the environment by small helpers that fail loudly."""

from __future__ import annotations

import base64
import hashlib
import os

from django.core.exceptions import ImproperlyConfigured


def text(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None or not value.strip():
        raise ImproperlyConfigured(f"{name} must be set")
    return value


def optional(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, got {raw!r}")


def integer(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {raw!r}")
    return value


def number(name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from None
    if not value > minimum:
        raise ImproperlyConfigured(f"{name} must be more than {minimum:g}, got {raw!r}")
    return value


def choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(name, default)
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def words(name: str, default: str) -> list[str]:
    return [w.strip() for w in os.environ.get(name, default).split(",") if w.strip()]


def optional_url(name: str, schemes: tuple[str, ...]) -> str | None:
    """An optional URL whose scheme must be one of `schemes` (a typo fails at start-up, not
    at the first message a worker cannot deliver)."""
    value = optional(name)
    if value is None:
        return None
    scheme, found, _ = value.partition("://")
    if not found or scheme not in schemes:
        allowed = ", ".join(f"{s}://" for s in schemes)
        # Only the scheme is echoed: the rest of a URL may hold a password.
        got = f"{scheme}://..." if found else "no scheme"
        raise ImproperlyConfigured(f"{name} must start with {allowed}, got {got}")
    return value


def fernet_keys(name: str, development: str | None) -> list[str]:
    """Comma-separated Fernet keys (the first encrypts, all decrypt). Without the variable,
    a key derived from `development` (only given while DEBUG is on), else a loud failure.

    A key is never echoed in an error: it is a secret. Checked here by shape (32 bytes,
    URL-safe base64) so a typo fails at start-up, not at the first credential saved.
    """
    raw = [k.strip() for k in os.environ.get(name, "").split(",") if k.strip()]
    if not raw:
        if development is None:
            raise ImproperlyConfigured(
                f"{name} must be set (Fernet keys: python -c 'from cryptography.fernet import "
                "Fernet; print(Fernet.generate_key().decode())')"
            )
        digest = hashlib.sha256(f"switchyard-credentials:{development}".encode()).digest()
        return [base64.urlsafe_b64encode(digest).decode()]
    for position, key in enumerate(raw, 1):
        try:
            decoded = base64.urlsafe_b64decode(key.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            decoded = b""
        if len(decoded) != 32:
            raise ImproperlyConfigured(
                f"{name}: key {position} of {len(raw)} is not a Fernet key "
                "(32 bytes in URL-safe base64)"
            )
    return raw
