"""Executing runs. The product's whole interface to it is ``start`` and ``cancel``.

``settings.RUN_DRIVER`` names the driver class by its dotted path, the way Django's
``EMAIL_BACKEND`` names a mail backend (``SWITCHYARD_RUN_DRIVER=inprocess|celery`` picks
one of the two here: webapp/settings.py). Both functions are sync and may be called from
any thread; the product calls ``start`` once the transaction that stored the run commits
(webapp.runs.services).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, Protocol

from django.conf import settings
from django.utils.module_loading import import_string


class Driver(Protocol):
    # False when a run dies with the process that executes it (recover_runs closes such
    # runs at start-up).
    runs_outlive_the_server: bool

    def start(self, run_id: int) -> str | None: ...

    def cancel(self, run_id: int) -> bool: ...

    # Go on with a parked run once ``claim`` (webapp.runs.approvals.claim_answer) has taken
    # it out of waiting; raises what ``claim`` raises, or NotWaiting.
    def resume(self, run_id: int, claim: Callable[[], Any]) -> None: ...


def start(run_id: int) -> str | None:
    """Hand a queued run to the driver; a notice for the user when it cannot start yet."""
    return driver().start(run_id)


def cancel(run_id: int) -> bool:
    """Stop a queued or running run; False when it had ended already."""
    return driver().cancel(run_id)


def driver() -> Driver:
    """The driver settings.RUN_DRIVER names (one per process and setting)."""
    return _load(settings.RUN_DRIVER)


@cache
def _load(path: str) -> Driver:
    return import_string(path)()
