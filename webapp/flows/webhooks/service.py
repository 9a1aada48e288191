"""Webhooks: make, rotate and check them, and turn a delivery into a run.

A caller POSTs to ``/hooks/<token>`` with

- ``X-Switchyard-Timestamp``: Unix seconds, within ``TOLERANCE_S`` of the server's clock
  (an old delivery replayed later is refused);
- ``X-Switchyard-Signature: sha256=<hex>``: HMAC-SHA256 with the hook's secret over the
  timestamp, a dot, and the raw body, exactly as sent.

>>> secret = "whsec_test"
>>> body = b'{"topic": "stacks"}'
>>> header = signature(secret, 1700000000, body)
>>> header.startswith("sha256=") and len(header) == 71
True
>>> check_signature(secret, "1700000000", header, body, now=1700000100) is None
True
>>> check_signature(secret, "1700000000", header, body + b" ", now=1700000100)
'the signature does not match the body'
>>> check_signature(secret, "1700000000", header, body, now=1700000301)
'the timestamp is more than 300 s from the server clock'
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from webapp.core.ratelimit import Refused, seconds_to_wait
from webapp.execution.plans import compiled_version
from webapp.flows.models import Flow, Webhook, WebhookDelivery
from webapp.runs.services import version_for_outside

TOLERANCE_S = 300
TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")
# Deliveries kept per hook: the page shows the newest; older ones are dropped as new come.
KEEP_DELIVERIES = 200
MAX_PER_MINUTE = 10_000
INPUT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")


class HookRefused(Refused):
    """A delivery that starts nothing."""


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def create(
    flow: Flow, user, name: str, input_map: dict[str, str] | None = None, per_minute: int = 60
) -> Webhook:
    """A new enabled hook of `flow` whose runs `user` starts; its secret is on the object
    returned, and only there for the caller to show once."""
    return Webhook.objects.create(
        flow=flow,
        name=name,
        token=secrets.token_urlsafe(32),
        secret=new_secret(),
        input_map=check_input_map(input_map or {}),
        per_minute=per_minute,
        created_by=user,
    )


def rotate(hook: Webhook) -> Webhook:
    """A new secret: signatures made with the old one are refused from now on."""
    hook.secret = new_secret()
    hook.rotated = timezone.now()
    hook.save(update_fields=["secret", "rotated"])
    return hook


def check_input_map(mapping: Any) -> dict[str, str]:
    """The mapping as stored, or ValueError naming what is wrong."""
    if not isinstance(mapping, dict):
        raise ValueError("input_map must be an object: {flow input: body field}")
    for name, field in mapping.items():
        if not INPUT_NAME.fullmatch(name):
            raise ValueError(f"input_map: {name!r} is not an input name")
        if not isinstance(field, str) or not 1 <= len(field) <= 200:
            raise ValueError(f"input_map: the field for {name!r} must be 1-200 characters")
    return dict(mapping)


def signature(secret: str, timestamp: int | str, body: bytes) -> str:
    """The ``X-Switchyard-Signature`` value a caller sends for `body` at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def check_signature(
    secret: str, timestamp: str | None, header: str | None, body: bytes, now: float
) -> str | None:
    """What is wrong with a delivery's signature, or None when it is the hook's."""
    if not timestamp or not header:
        return "X-Switchyard-Timestamp and X-Switchyard-Signature are required"
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        return "X-Switchyard-Timestamp must be Unix seconds"
    if abs(now - int(timestamp)) > TOLERANCE_S:
        return f"the timestamp is more than {TOLERANCE_S} s from the server clock"
    if not hmac.compare_digest(signature(secret, timestamp, body), header.strip()):
        return "the signature does not match the body"
    return None


def hook_for(token: str) -> Webhook | None:
    if not TOKEN.fullmatch(token):
        return None
    return Webhook.objects.select_related("flow", "created_by").filter(token=token).first()


def inputs_from(hook: Webhook, body: bytes, content_type: str) -> dict[str, Any]:
    """The run's inputs from a delivery's body: the JSON object's top-level fields, renamed
    by the hook's ``input_map``; fields that are no input of the flow are left out (a
    caller's payload usually carries more than the flow needs)."""
    if not body.strip():
        fields: dict[str, Any] = {}
    else:
        if content_type.split(";")[0].strip().lower() not in ("application/json", ""):
            raise HookRefused(415, "unsupported_media_type", "send the body as application/json")
        try:
            fields = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise HookRefused(400, "bad_json", f"the body is not JSON: {exc}") from None
        if not isinstance(fields, dict):
            raise HookRefused(400, "bad_json", "the body must be a JSON object")
    return {name: fields[field] for name, field in _fields(hook).items() if field in fields}


def _fields(hook: Webhook) -> dict[str, str]:
    """Flow input -> body field, for every input of the version the hook runs."""
    compiled = compiled_version(version_for_outside(hook.flow), hook.created_by_id)
    return {name: hook.input_map.get(name, name) for name in compiled.inputs}


def take_slot(hook: Webhook) -> None:
    """HookRefused 429 when the hook had ``per_minute`` deliveries in the last minute."""
    since = timezone.now() - timedelta(minutes=1)
    # Refused signatures do not count: whoever has only the URL cannot use up the limit of
    # the caller who has the secret. (Two deliveries checking at once may both get in.)
    recent = list(
        hook.deliveries.filter(at__gte=since)
        .exclude(status=401)
        .order_by("at")
        .values_list("at", flat=True)
    )
    wait = seconds_to_wait(recent, hook.per_minute, timezone.now())
    if wait is not None:
        raise HookRefused(
            429,
            "rate_limited",
            f"this hook takes {hook.per_minute} deliveries a minute",
            retry_after=wait,
        )


def record(hook: Webhook, status: int, detail: str = "", run_id: int | None = None) -> None:
    with transaction.atomic():
        WebhookDelivery.objects.create(hook=hook, status=status, detail=detail[:300], run_id=run_id)
        stale = hook.deliveries.order_by("-at", "-id").values_list("id", flat=True)[
            KEEP_DELIVERIES:
        ]
        WebhookDelivery.objects.filter(id__in=list(stale)).delete()


def clock() -> float:
    return time.time()
