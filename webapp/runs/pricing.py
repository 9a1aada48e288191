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

The batch lane: usage answered from a Message Batch counts under ``<model>@batch`` and
costs half of the model's price, cache figures included.

>>> cost_usd("claude-sonnet-4-6@batch", {"input_tokens": 1000, "output_tokens": 200}, prices)
Decimal('0.003000')

Prompt caching: the prompt's tokens written to the cache cost ``cache_write`` (one-hour
ones ``cache_write_1h``), those read from it ``cache_read``; a price entry without them
takes 1.25x, 2x and 0.1x its input price, as the API charges.

>>> usage = {"input_tokens": 10, "output_tokens": 0, "cache_creation_input_tokens": 1000,
...          "cache_read_input_tokens": 9000}
>>> cost_usd("claude-sonnet-4-6", usage, prices)  # 10*3 + 1000*3.75 + 9000*0.3, per million
Decimal('0.006480')
>>> cache_saving_usd("claude-sonnet-4-6", usage, prices)  # 10,000 at 3 - (3,750 + 2,700)
Decimal('0.023550')
>>> cache_saving_usd("claude-sonnet-4-6", {"input_tokens": 5}, prices) is None
True
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings

from graphs.llm import batch

MILLION = Decimal(1_000_000)
CENTS = Decimal("0.000001")
# Calls answered from a Message Batch (usage under "<model>@batch", graphs.llm.batch).
BATCH_RATE = Decimal(str(batch.BATCH_RATE))


def price_for(model: str | None, prices: Mapping[str, Mapping[str, float]] | None = None):
    """The price entry whose key is the longest prefix of `model`; None when unpriced."""
    if not model:
        return None
    model = batch.base_model(model)[0]
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
    rates = _rates(price)
    total = (
        rates["input"] * _tokens(usage, "input_tokens")
        + rates["output"] * _tokens(usage, "output_tokens")
        + _cache_cost(rates, usage)
    )
    if model and batch.base_model(model)[1]:
        total *= BATCH_RATE
    return (total / MILLION).quantize(CENTS, rounding=ROUND_HALF_UP)


def cache_saving_usd(
    model: str | None,
    usage: Mapping[str, Any] | None,
    prices: Mapping[str, Mapping[str, float]] | None = None,
) -> Decimal | None:
    """What the provider's prompt cache saved on one usage record: its cached tokens at the
    input price, less what writing and reading them cost (negative when writes were never
    read enough to pay for themselves). None when nothing was cached, or no price."""
    usage = usage or {}
    cached = _tokens(usage, "cache_creation_input_tokens") + _tokens(
        usage, "cache_read_input_tokens"
    )
    price = price_for(model, prices)
    if price is None or not cached:
        return None
    rates = _rates(price)
    saved = rates["input"] * cached - _cache_cost(rates, usage)
    if model and batch.base_model(model)[1]:
        saved *= BATCH_RATE
    return (saved / MILLION).quantize(CENTS, rounding=ROUND_HALF_UP)


def cache_read_share(usage: Mapping[str, Any] | None) -> int | None:
    """The percentage of a usage record's prompt tokens read from the cache; None when
    nothing was cached.

    >>> cache_read_share({"input_tokens": 50, "cache_creation_input_tokens": 50,
    ...                   "cache_read_input_tokens": 900})
    90
    """
    usage = usage or {}
    read = _tokens(usage, "cache_read_input_tokens")
    written = _tokens(usage, "cache_creation_input_tokens")
    if not read and not written:
        return None
    # Half up, as the browser rounds (static/js/runs/model.js providerCache).
    return int(100 * read / (read + written + _tokens(usage, "input_tokens")) + 0.5)


def provider_cache_text(usage: Mapping[str, Any] | None, saved: Any) -> str:
    """ "N% read, saved $X" for a usage record that wrote or read the provider's cache; ""
    for one that did not.

    >>> provider_cache_text({"input_tokens": 10, "cache_read_input_tokens": 90}, 0.0042)
    '90% read, saved $0.0042'
    >>> provider_cache_text({"input_tokens": 10, "cache_creation_input_tokens": 90}, -0.0001)
    '0% read, saved -$0.0001'
    >>> provider_cache_text({"input_tokens": 10}, None)
    ''
    """
    share = cache_read_share(usage)
    if share is None:
        return ""
    text = f"{share}% read"
    if saved is not None:
        amount = Decimal(str(saved))
        text += f", saved {'-' if amount < 0 else ''}{format_usd(abs(amount))}"
    return text


def _tokens(usage: Mapping[str, Any], name: str) -> int:
    try:
        return int(usage.get(name) or 0)
    except (TypeError, ValueError):
        return 0


def _rates(price: Mapping[str, float]) -> dict[str, Decimal]:
    given = Decimal(str(price.get("input", 0)))
    return {
        "input": given,
        "output": Decimal(str(price.get("output", 0))),
        "cache_write": Decimal(str(price.get("cache_write", given * Decimal("1.25")))),
        "cache_write_1h": Decimal(str(price.get("cache_write_1h", given * 2))),
        "cache_read": Decimal(str(price.get("cache_read", given * Decimal("0.1")))),
    }


def _cache_cost(rates: Mapping[str, Decimal], usage: Mapping[str, Any]) -> Decimal:
    """Per million: the cache writes (by lifetime) and reads of a usage record."""
    written = _tokens(usage, "cache_creation_input_tokens")
    hour = min(_tokens(usage, "cache_creation_1h_input_tokens"), written)
    return (
        rates["cache_write"] * (written - hour)
        + rates["cache_write_1h"] * hour
        + rates["cache_read"] * _tokens(usage, "cache_read_input_tokens")
    )


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
