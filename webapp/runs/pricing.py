"""What tokens cost: settings.MODEL_PRICES times recorded usage.

>>> from decimal import Decimal
>>> prices = {"claude-sonnet-4": {"input": 3.0, "output": 15.0}}
>>> cost_usd("claude-sonnet-4-6", {"input_tokens": 1000, "output_tokens": 200}, prices)
Decimal('0.006000')
>>> cost_usd("gpt-9", {"input_tokens": 1000}, prices) is None
True
>>> format_usd(Decimal("0.0042")), format_usd(Decimal("12.5")), format_usd(Decimal(0))
('$0.0042', '$12.50', '$0')
>>> format_usd(Decimal("0.00123456"))
'$0.001235'
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings

MILLION = Decimal(1_000_000)
CENTS = Decimal("0.000001")


def price_for(model: str | None, prices: Mapping[str, Mapping[str, float]] | None = None):
    """The price entry whose key is the longest prefix of `model`; None when unpriced."""
    if not model:
        return None
    table = settings.MODEL_PRICES if prices is None else prices
    best = max((key for key in table if model.startswith(key)), key=len, default=None)
    return None if best is None else table[best]


def cost_usd(
    model: str | None,
    usage: Mapping[str, Any] | None,
    prices: Mapping[str, Mapping[str, float]] | None = None,
) -> Decimal | None:
    """Dollars for one usage record of one model; None when the model has no price."""
    price = price_for(model, prices)
    if price is None:
        return None
    usage = usage or {}
    total = Decimal(str(price.get("input", 0))) * int(usage.get("input_tokens", 0)) + Decimal(
        str(price.get("output", 0))
    ) * int(usage.get("output_tokens", 0))
    return (total / MILLION).quantize(CENTS, rounding=ROUND_HALF_UP)


def usage_cost_usd(usage_by_model: Mapping[str, Mapping[str, Any]] | None) -> Decimal:
    """Dollars for a run's usage by model (run_finished's `usage_by_model`); unpriced = 0."""
    total = Decimal(0)
    for model, usage in (usage_by_model or {}).items():
        total += cost_usd(model, usage) or 0
    return total


def format_usd(amount: Decimal | float | None) -> str:
    """A short dollar figure: cents for big sums, four significant places for small ones."""
    if amount is None:
        return "—"
    amount = Decimal(str(amount))
    if amount == 0:
        return "$0"
    if abs(amount) >= 1:
        return f"${amount.quantize(Decimal('0.01'))}"
    if abs(amount) < Decimal("0.0001"):
        return "<$0.0001"
    return f"${float(amount):.4g}"
