"""Requests a minute, counted from rows already stored (a hook's deliveries, a chat's
messages): the sliding window both webhooks and chat links hold their callers to.

>>> import datetime as dt
>>> now = dt.datetime(2026, 1, 1, 12, 0, 30)
>>> times = [now - dt.timedelta(seconds=s) for s in (50, 20, 5)]
>>> seconds_to_wait(times, 3, now), seconds_to_wait(times, 4, now)
(11, None)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

WINDOW = dt.timedelta(minutes=1)


class Refused(Exception):
    """A request that starts nothing: ``status`` and ``code`` are the answer's, and a
    429 says when to come back (``retry_after``, seconds)."""

    def __init__(self, status: int, code: str, detail: str, retry_after: int | None = None):
        super().__init__(detail)
        self.status, self.code, self.detail, self.retry_after = status, code, detail, retry_after


def seconds_to_wait(times: Sequence[dt.datetime], per_minute: int, now: dt.datetime) -> int | None:
    """None when one more fits in the minute before `now` (`times` oldest first, already
    cut to that minute), else the whole seconds until one does (at least 1)."""
    if len(times) < per_minute:
        return None
    left = (WINDOW - (now - times[-per_minute])).total_seconds()
    return max(1, int(left) + 1)
