"""The cost budget seam: each model call reserves what it may cost before it starts.

The engine knows no prices (the host does), so a host that holds runs to a budget lends
a ``Budget`` through ``Services.budget``. ``NodeContext.call_model`` asks it to
``reserve`` before each call and hands the reservation the call's real usage afterwards
(``settle``), so a reservation is replaced by what the call cost. A call that would take
the run past its budget does not start: ``reserve`` raises ``BudgetExceeded``, a
``NodeWaits`` whose wait (kind ``budget``) says what was spent, what is left and what the
call needs. Its node parks (``graphs.schedule``: ``node_waiting``, and ``run_paused``),
holding nothing; once someone raises the budget, ``Schedule.resume_budget`` runs the
parked nodes again from their inputs. Nodes that finished are not run again, so nothing
they paid for is paid twice.

Without a host's budget (``NO_BUDGET``, the command line) every call goes ahead.

>>> import asyncio
>>> from graphs.llm.types import ModelRequest
>>> hold = asyncio.run(NO_BUDGET.reserve("ask", 1, ModelRequest("m", [])))
>>> asyncio.run(hold.settle("m", Usage(3, 4)))
>>> exceeded = BudgetExceeded(spent_usd=0.5, remaining_usd=0.1, needed_usd=0.2, budget_usd=0.6)
>>> exceeded.wait["kind"], exceeded.wait["needed_usd"]
('budget', 0.2)

``request_tokens`` is the conservative count a reservation uses: no request to the API per
call, and never fewer tokens than the prompt has (a token is rarely under 3 characters).

>>> request_tokens(ModelRequest("m", [{"role": "user", "content": "Say hi"}], system="Be kind"))
5
"""

from __future__ import annotations

import json
import math
from typing import Any, Protocol

from graphs.errors import NodeWaits
from graphs.llm.types import ModelRequest, Usage

# Characters per token a reservation assumes: fewer than any English text has, so a
# reservation is an upper bound for the prompt.
CHARS_PER_TOKEN = 3


class Hold(Protocol):
    """One call's reservation: ``settle`` replaces it with the call's real usage."""

    async def settle(self, model: str, usage: Usage) -> None: ...


class Budget(Protocol):
    """Reserves each model call's expected cost against what is left of a run's budget."""

    async def reserve(self, node: str, iteration: int, request: ModelRequest) -> Hold:
        """A hold for this call; BudgetExceeded when it would take the run past its budget."""
        ...


class BudgetExceeded(NodeWaits):
    """The call would exceed the run's budget: its node parks until the budget is raised."""

    def __init__(
        self, *, spent_usd: float, remaining_usd: float, needed_usd: float, budget_usd: float
    ):
        super().__init__(
            {
                "kind": "budget",
                "spent_usd": spent_usd,
                "remaining_usd": remaining_usd,
                "needed_usd": needed_usd,
                "budget_usd": budget_usd,
            }
        )


class _NoHold:
    async def settle(self, model: str, usage: Usage) -> None:
        return None


class _NoBudget:
    async def reserve(self, node: str, iteration: int, request: ModelRequest) -> Hold:
        return _NoHold()


NO_BUDGET: Budget = _NoBudget()


def request_tokens(request: ModelRequest) -> int:
    """An upper bound of the request's input tokens, counted here (see CHARS_PER_TOKEN)."""
    size = len(request.system or "")
    size += sum(len(_text(message)) for message in request.messages)
    if request.tools:
        size += len(json.dumps(request.tools))
    return max(1, math.ceil(size / CHARS_PER_TOKEN))


def _text(message: Any) -> str:
    content = message.get("content") if isinstance(message, dict) else message
    if isinstance(content, str):
        return content
    return json.dumps(content)
