"""Credentials: secrets a flow names but never holds.

A flow refers to a credential by name in a dedicated field (the ``http`` node's ``auth``),
never inside template text, so a secret can be neither sent to a model nor rendered into
an output. The host lends the values through ``Services.credentials``, a
``CredentialSource``: the web app's is loaded for one run (its team's credentials, or its
runner's own), the command line has none. Only ``auth_headers`` here turns a value into
what goes on the wire; nothing here logs, returns or raises with a value in it. A server
may echo what it got (in a body, a header, an error text): ``secret_forms`` and ``redact``
cut it out of an answer before a node emits, fails with or records any of it.

>>> auth_headers("bearer", "s3cret")
[('Authorization', 'Bearer s3cret')]
>>> auth_headers("basic", "ann:pw")
[('Authorization', 'Basic YW5uOnB3')]
>>> auth_headers("api_key", "k", header="X-Key")
[('X-Key', 'k')]
>>> auth_headers("headers", "X-A: 1\\nX-B: two words")
[('X-A', '1'), ('X-B', 'two words')]
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Protocol

KINDS = ("api_key", "bearer", "basic", "headers", "anthropic_key")
# Kinds whose value becomes request headers; an anthropic_key is for model calls only.
HTTP_KINDS = ("api_key", "bearer", "basic", "headers")
DEFAULT_API_KEY_HEADER = "X-API-Key"
# A credential's name: what the http node's ``auth`` field says. The identifier charset
# of node ids (graphs.document.IDENTIFIER), at most 100 characters.
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,99}$")
NAME_HELP = "a letter or _, then letters, digits, _ or -, at most 100 characters"
# RFC 9110 token: a header name.
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# Visible ASCII and spaces/tabs: no CR or LF (header injection), nothing a client rejects.
_HEADER_VALUE = re.compile(r"^[\t\x20-\x7e]*$")
MAX_VALUE_CHARS = 10_000
# Set by the client for the pinned connection and the capped body (as graphs.nodes.http).
RESERVED_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "accept-encoding"}
)


class CredentialError(ValueError):
    """A credential missing, of the wrong kind or malformed. Its text names the credential
    and what is wrong, never the value."""


@dataclass(frozen=True, repr=False)
class Secret:
    """A credential's kind and value. ``repr`` hides the value, so a traceback or a debug
    print of one cannot leak it."""

    kind: str
    value: str
    header: str = DEFAULT_API_KEY_HEADER

    def __repr__(self) -> str:
        return f"Secret(kind={self.kind!r}, value=<hidden>)"


class CredentialSource(Protocol):
    def look_up(self, name: str) -> Secret | None: ...


class NoCredentials:
    def look_up(self, name: str) -> Secret | None:
        return None


NO_CREDENTIALS = NoCredentials()


def value_problem(kind: str, value: str, header: str = DEFAULT_API_KEY_HEADER) -> str | None:
    """What is wrong with a value of `kind` as entered, or None. Never quotes the value."""
    if kind not in KINDS:
        return f"kind must be one of {', '.join(KINDS)}"
    if not value:
        return "the value is empty"
    if len(value) > MAX_VALUE_CHARS:
        return f"the value is longer than {MAX_VALUE_CHARS} characters"
    if kind == "anthropic_key":
        return None if _HEADER_VALUE.match(value) else "the key holds characters a key cannot"
    if kind == "api_key" and not HEADER_NAME.match(header):
        return "header is not a header name"
    if kind == "basic" and ":" not in value:
        return "a basic credential is user:password"
    try:
        auth_headers(kind, value, header=header)
    except CredentialError as exc:
        return str(exc)
    return None


def auth_headers(
    kind: str, value: str, *, header: str = DEFAULT_API_KEY_HEADER
) -> list[tuple[str, str]]:
    """The request headers a credential adds."""
    if kind == "bearer":
        pairs = [("Authorization", f"Bearer {value.strip()}")]
    elif kind == "basic":
        pairs = [("Authorization", "Basic " + base64.b64encode(value.encode()).decode())]
    elif kind == "api_key":
        pairs = [(header, value.strip())]
    elif kind == "headers":
        pairs = []
        for number, line in enumerate(value.splitlines(), 1):
            if not line.strip():
                continue
            name, sep, rest = line.partition(":")
            if not sep or not HEADER_NAME.match(name.strip()):
                raise CredentialError(f"line {number} is not a header (Name: value)")
            pairs.append((name.strip(), rest.strip()))
        if not pairs:
            raise CredentialError("a headers credential needs at least one Name: value line")
    else:
        raise CredentialError(f"a {kind} credential cannot authenticate an HTTP request")
    for name, text in pairs:
        if name.lower() in RESERVED_HEADERS:
            raise CredentialError(f"header {name} is set by the client, not a credential")
        if not _HEADER_VALUE.match(text):
            raise CredentialError(f"the value for header {name} holds a line break or control")
    return pairs


REDACTED = "[redacted]"


def secret_forms(secret: Secret, headers: list[tuple[str, str]]) -> list[str]:
    """What to cut out of an answer to a request `secret` authenticated: the value as
    entered and each header value it became (a Basic token, say), with the token alone
    after its scheme and a basic credential's password. A server may echo any of them, in
    a body or an error. Longest first, so a longer form is cut before a part of it.

    >>> secret_forms(Secret("basic", "ann:pw-12345678"), auth_headers("basic", "ann:pw-12345678"))
    ['Basic YW5uOnB3LTEyMzQ1Njc4', 'YW5uOnB3LTEyMzQ1Njc4', 'ann:pw-12345678', 'pw-12345678']
    """
    whole = {secret.value.strip(), *(value for _, value in headers)}
    # Parts, only when long enough not to be an ordinary word of an answer.
    parts = {value.rpartition(" ")[2] for _, value in headers}
    if secret.kind == "basic":
        parts.add(secret.value.partition(":")[2])
    found = {s for s in whole if len(s) >= 4} | {s for s in parts if len(s) >= 8}
    return sorted(found, key=lambda s: (-len(s), s))


def redact(text: str, forms: list[str]) -> str:
    """`text` with each of `forms` (``secret_forms``) replaced by ``[redacted]``."""
    for form in forms:
        text = text.replace(form, REDACTED)
    return text
