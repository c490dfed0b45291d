"""Prices and costs: every line's cost is its actual usage times the price of the route it took."""

from dataclasses import dataclass

from broker.catalogue import ProviderConfig

PER_TOKENS = 1_000_000  #: catalogue prices are USD per this many tokens


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0  #: of the input tokens, served from the provider's prompt cache


def line_cost(provider: ProviderConfig, model: str | None, usage: Usage, discount: float = 0.0) -> float:
    """USD for one call: input (cached input at its own price when the catalogue has one) + output, less the
    route's discount (a native batch API's, for instance)."""
    spec = provider.models.get(model or "")
    if spec is None:
        return 0.0
    cached_price = spec.cached_input if spec.cached_input is not None else spec.input
    fresh = max(0, usage.input_tokens - usage.cached_tokens)
    cost = (fresh * spec.input + usage.cached_tokens * cached_price + usage.output_tokens * spec.output) / PER_TOKENS
    return cost * (1.0 - discount)
