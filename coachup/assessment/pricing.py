"""Token prices of the chat models the assessor may call, and the cost of one call in USD.

Prices are USD per 1M tokens (input, output) as published by OpenAI in 2025; check them before
trusting a cost dashboard. Dated model names ("gpt-4o-mini-2024-07-18") match their family by the
longest known prefix; an unknown model costs 0 (and a test keeps that from raising).
"""

from __future__ import annotations

__all__ = ["PRICES_PER_MILLION", "price_for", "cost_usd"]

PRICES_PER_MILLION: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4-turbo": (10.00, 30.00),
    "gpt-3.5-turbo": (0.50, 1.50),
    "o4-mini": (1.10, 4.40),
    "o3-mini": (1.10, 4.40),
    "o3": (2.00, 8.00),
}


def price_for(model: str | None) -> tuple[float, float] | None:
    """(input, output) USD per 1M tokens for `model` or its longest known prefix; None when unknown."""
    if not model:
        return None
    name = model.strip().lower().split("/")[-1]  # "openai/gpt-4o-mini" from routers
    for known in sorted(PRICES_PER_MILLION, key=len, reverse=True):
        if name == known or name.startswith(known + "-"):
            return PRICES_PER_MILLION[known]
    return None


def cost_usd(model: str | None, tokens_in: int, tokens_out: int) -> float:
    """Cost in USD of one call (0.0 for an unknown model), rounded to 1e-8 USD."""
    price = price_for(model)
    if price is None:
        return 0.0
    return round((max(0, tokens_in) * price[0] + max(0, tokens_out) * price[1]) / 1_000_000, 8)
