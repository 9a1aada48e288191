"""``Idempotency-Key``: a client that retries a start it is unsure of gets the same run.

The same key with the same request from the same user within ``IDEMPOTENCY_TTL`` gives the
first run back and starts nothing; with a different request it is a conflict. Keys are
1 to 255 visible ASCII characters (``!`` to ``~``), as in the IETF draft's examples.

Two requests racing with one key start one run: each stores its run and its key in one
transaction, and the database's uniqueness on (user, key) lets only one commit; the other
rolls back (its run never starts, since runs start on commit) and answers with the
winner's run.

>>> valid_key("a8098c1a-f86e-11da-bd1a-00112444be1e"), valid_key("two words"), valid_key("")
(True, False, False)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable

from django.db import IntegrityError, transaction
from django.utils import timezone

from webapp.runs.models import IdempotencyKey, Run

IDEMPOTENCY_TTL = dt.timedelta(hours=24)
KEY = re.compile(r"[!-~]{1,255}")


class KeyReused(ValueError):
    """The key was used for a different request within the window."""


def valid_key(key: str) -> bool:
    return KEY.fullmatch(key) is not None


def digest(*parts: bytes) -> str:
    """What a request asked for, as the key remembers it."""
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


def start_once(user, key: str, request_digest: str, start: Callable[[], Run]) -> tuple[Run, bool]:
    """The run this key started (and True), or a new one from `start()` (and False).

    KeyReused when the key was used for another request in the last ``IDEMPOTENCY_TTL``.
    """
    earlier = _earlier(user, key)
    if earlier is None:
        try:
            with transaction.atomic():
                run = start()
                IdempotencyKey.objects.create(user=user, key=key, digest=request_digest, run=run)
            return run, False
        except IntegrityError:
            # Another request with this key committed first: its run is the answer.
            earlier = _earlier(user, key)
            if earlier is None:
                raise
    if earlier.digest != request_digest:
        raise KeyReused(
            "this Idempotency-Key was used for a different request in the last 24 hours: "
            "use a new key for a new request"
        )
    return earlier.run, True


def _earlier(user, key: str) -> IdempotencyKey | None:
    cutoff = timezone.now() - IDEMPOTENCY_TTL
    # A user's expired keys are forgotten at their next keyed start (an expired key can
    # then start a new run), which keeps the table to a day of keys per user.
    IdempotencyKey.objects.filter(user=user, created__lt=cutoff).delete()
    return IdempotencyKey.objects.filter(user=user, key=key).select_related("run").first()
