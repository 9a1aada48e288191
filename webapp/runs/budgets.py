"""Cost budgets of runs: each model call reserves what it may cost, in the database.

A run's budget (``Run.budget_usd``: the run form's or the API's, else its flow's) is held
call by call, across every process that executes the run's nodes: the engine asks its
``graphs.budget.Budget`` (``DbBudget``, lent by webapp.execution.plans.compiled_run on
both drivers) before each model call. ``reserve`` is one short transaction under the run
row's lock: what was spent (``Run.spent_usd``) plus the reservations of calls in flight
(``BudgetReservation`` rows) plus this call's expected cost must fit in the budget, and
then a row is taken. A call ends by ``settle``: its row goes and its real cost is added
to what was spent, in one transaction, so a reservation is replaced by the real figure.

A call that cannot fit while others are in flight waits for them (their real cost is
usually below what they reserved); one that would exceed the budget with nothing in
flight does not start: ``BudgetExceeded`` parks its node and the run pauses
(``run_paused``). Raising the budget (webapp.runs.budget_raise: the API, the run page;
editors) resumes it: the paused nodes run again, and nothing that finished runs again.

A call's expected cost: its prompt counted conservatively (``graphs.budget.request_tokens``)
at the model's input price, plus ``max_tokens`` at its output price, the most the reply
may cost. A model without a price (the offline model costs nothing) reserves nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import F, Sum

from graphs.budget import BudgetExceeded, Hold, request_tokens
from graphs.llm.types import ModelRequest, Usage
from webapp.execution import dbthreads
from webapp.runs import pricing
from webapp.runs.models import BudgetReservation, Run

log = logging.getLogger(__name__)

# Budgets take their own database threads, as the slots do: a reserve must not queue
# behind the requests served on asgiref's shared thread.
_db = ThreadPoolExecutor(max_workers=2, thread_name_prefix="budgets")
# How long a call waits for the calls in flight to settle before it pauses the run instead
# (a reservation left by a worker that died would otherwise hold it for ever).
WAIT_FOR_IN_FLIGHT_S = 60.0
MAX_BUDGET_USD = Decimal(1_000_000)


class BudgetInvalid(ValueError):
    """A budget that cannot be: not a number, not above 0, or above MAX_BUDGET_USD."""


def checked_budget(value: Any) -> Decimal | None:
    """A budget as stored (None: no budget), or BudgetInvalid saying what is wrong.

    >>> checked_budget("0.5"), checked_budget(None), checked_budget(2)
    (Decimal('0.500000'), None, Decimal('2.000000'))
    >>> checked_budget(0)
    Traceback (most recent call last):
    ...
    webapp.runs.budgets.BudgetInvalid: budget_usd must be more than 0 (US dollars), got 0
    """
    if value is None or value == "":
        return None
    try:
        amount = Decimal(str(value))
    except ArithmeticError:
        raise BudgetInvalid(f"budget_usd must be a number of US dollars, got {value!r}") from None
    if not amount.is_finite() or isinstance(value, bool):
        raise BudgetInvalid(f"budget_usd must be a number of US dollars, got {value!r}")
    if amount <= 0:
        raise BudgetInvalid(f"budget_usd must be more than 0 (US dollars), got {value}")
    if amount > MAX_BUDGET_USD:
        raise BudgetInvalid(f"budget_usd must be at most {MAX_BUDGET_USD:,} US dollars")
    return amount.quantize(pricing.CENTS)


def call_cost(request: ModelRequest) -> Decimal:
    """The most a call may cost: its prompt (counted conservatively) and max_tokens."""
    usage = {"input_tokens": request_tokens(request), "output_tokens": request.max_tokens}
    return pricing.cost_usd(request.model, usage) or Decimal(0)


@dataclass(frozen=True)
class _Pause:
    spent: Decimal
    budget: Decimal


_WAIT = object()


def take(run_id: int, node: str, iteration: int, needed: Decimal) -> int | object | None:
    """One try at reserving ``needed`` for a call of ``node``: the reservation's id, None
    when the run has no budget, ``_WAIT`` while calls in flight hold what it needs, or a
    ``_Pause`` when it would exceed the budget with nothing in flight."""
    with transaction.atomic():
        run = Run.objects.select_for_update().only("budget_usd", "spent_usd").get(pk=run_id)
        if run.budget_usd is None:
            return None
        held = run.reservations.aggregate(total=Sum("amount_usd"))["total"] or Decimal(0)
        if run.spent_usd + held + needed <= run.budget_usd:
            row = BudgetReservation.objects.create(
                run_id=run_id, node=node, iteration=iteration, amount_usd=needed
            )
            return row.pk
        if held and run.spent_usd + needed <= run.budget_usd:
            return _WAIT
        return _Pause(run.spent_usd, run.budget_usd)


def settle(run_id: int, reservation: int | None, model: str, usage: Usage) -> None:
    """A call ended: its reservation goes and its real cost counts as spent."""
    cost = pricing.cost_usd(model, usage.as_dict()) or Decimal(0)
    with transaction.atomic():
        if reservation is not None:
            BudgetReservation.objects.filter(pk=reservation).delete()
        if cost:
            Run.objects.filter(pk=run_id).update(spent_usd=F("spent_usd") + cost)


class DbHold:
    def __init__(self, run_id: int, reservation: int | None):
        self.run_id = run_id
        self.reservation = reservation

    async def settle(self, model: str, usage: Usage) -> None:
        await dbthreads.on(_db, settle, self.run_id, self.reservation, model, usage)


class DbBudget:
    """``graphs.budget.Budget`` for one run, kept in the database (see the module)."""

    def __init__(self, run_id: int, *, poll_s: float = 0.05):
        self.run_id = run_id
        self.poll_s = poll_s

    async def reserve(self, node: str, iteration: int, request: ModelRequest) -> Hold:
        needed = call_cost(request)
        began = time.monotonic()
        delay = self.poll_s
        while True:
            taken = await dbthreads.on(_db, take, self.run_id, node, iteration, needed)
            if taken is None or isinstance(taken, int):
                return DbHold(self.run_id, taken)
            if taken is _WAIT and time.monotonic() - began < WAIT_FOR_IN_FLIGHT_S:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            if not isinstance(taken, _Pause):
                # Waited too long for calls in flight: pause with the figures as they are.
                taken = await dbthreads.on(_db, figures, self.run_id)
            spent, budget = taken.spent, taken.budget
            raise BudgetExceeded(
                spent_usd=float(spent),
                remaining_usd=float(budget - spent),
                needed_usd=float(needed),
                budget_usd=float(budget),
            )

    def __repr__(self) -> str:
        return f"DbBudget(run {self.run_id})"


def figures(run_id: int) -> _Pause:
    run = Run.objects.only("budget_usd", "spent_usd").get(pk=run_id)
    return _Pause(run.spent_usd, run.budget_usd or Decimal(0))


def budget_for(flow_budget: Decimal | None, asked: Any) -> Decimal | None:
    """A new run's budget: the one asked for, else its flow's (BudgetInvalid if bad)."""
    checked = checked_budget(asked)
    return checked if checked is not None else flow_budget
