"""Where and how a batch's lines run: eligible deployments, then the cheapest route that meets the deadline.

Deployments of a model are the providers serving it, in the catalogue's order (that order is also the fallback
order); a batch's ``constraints`` (regions, providers) or its project's default regions filter them. Routes:

- ``realtime``: calls now (at an off-peak price if the batch starts inside one of the provider's windows);
- ``native_batch``: the provider's own batch API, at its discount, when its turnaround fits the window;
- ``off_peak``: calls held until the provider's next off-peak window, when that window opens in time.

A route other than real-time must leave :func:`fallback_reserve` of the window, so lines it does not finish
(a remote batch that fails or runs late) still have time to run in real time. ``auto`` takes the cheapest
feasible route, preferring real-time, then off-peak, then the native batch API at equal price.
"""

import dataclasses
from dataclasses import dataclass
from typing import Any

from broker.catalogue import Catalogue, ProviderConfig
from broker.errors import InvalidRequest
from broker.pricing import Usage, line_cost
from broker.tokens import output_budget, prompt_tokens

REALTIME, NATIVE_BATCH, OFF_PEAK = "realtime", "native_batch", "off_peak"
ROUTE_PREFERENCE = (REALTIME, OFF_PEAK, NATIVE_BATCH)  #: at equal price, the faster route wins
FALLBACK_SHARE = 0.1  #: share of the window kept free to finish a cheaper route's leftovers in real time
MIN_FALLBACK_SECONDS = 60.0
SAMPLE_OUTPUT_TOKENS = 256  #: output tokens assumed per chat line when comparing prices


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """How one model's lines in a batch run."""

    provider: str
    route: str
    not_before: float = 0.0  #: off-peak: when the window opens
    price_factor: float = 1.0  #: share of the real-time price the route is expected to cost
    line_cost_usd: float = 0.0  #: expected cost of one line like the sample, on this route

    def to_json(self) -> dict[str, Any]:
        return {"provider": self.provider, "route": self.route, "not_before": self.not_before or None,
                "line_cost_usd": self.line_cost_usd}


@dataclass(frozen=True, slots=True)
class RoutingRequest:
    """What a batch asks of routing: its endpoint, route, constraints and time frame."""

    endpoint: str
    route: str = "auto"
    regions: list[str] | None = None
    providers: list[str] | None = None
    start: float = 0.0
    expires_at: float | None = None


def fallback_reserve(start: float, expires_at: float) -> float:
    return max(MIN_FALLBACK_SECONDS, FALLBACK_SHARE * (expires_at - start))


def eligible(catalogue: Catalogue, regions: list[str] | None, providers: list[str] | None) -> list[str] | None:
    """Providers a batch may use, in fallback order; None when nothing constrains it."""
    if not regions and not providers:
        return None
    return [p.name for p in catalogue.providers.values()
            if (not providers or p.name in providers) and (not regions or set(p.regions) & set(regions))]


def deployments(catalogue: Catalogue, model: str, req: RoutingRequest) -> list[ProviderConfig]:
    """The model's deployments the batch may use, in fallback order; raises with the reason when there are none."""
    serving = catalogue.deployments(model)
    if not serving:
        known = ", ".join(catalogue.model_names()) or "none"
        raise InvalidRequest(f"The model '{model}' is not served by this broker. Known models: {known}.",
                             param="body.model", code="model_not_found")
    at_endpoint = [p for p in serving if p.serves(model, req.endpoint)]
    if not at_endpoint:
        raise InvalidRequest(f"The model '{model}' is not available for {req.endpoint} (served by "
                             f"{', '.join(p.name for p in serving)}).", param="body.model", code="model_not_found")
    allowed = eligible(catalogue, req.regions, req.providers)
    usable = [p for p in at_endpoint if allowed is None or p.name in allowed]
    if not usable:
        offered = "; ".join(f"{p.name} (regions: {', '.join(p.regions) or 'none'})" for p in at_endpoint)
        asked = ", ".join(f"{k} {v}" for k, v in (("regions", req.regions), ("providers", req.providers)) if v)
        raise InvalidRequest(f"No deployment of '{model}' satisfies the batch's constraints ({asked}); "
                             f"it is served by {offered}.", param="constraints", code="no_eligible_deployment")
    return usable


def sample_usage(endpoint: str, body: dict[str, Any]) -> Usage:
    """Tokens one line like ``body`` is expected to use, for comparing prices between routes."""
    budget = output_budget(endpoint, body)
    explicit = any(isinstance(body.get(k), int) for k in ("max_completion_tokens", "max_tokens", "max_output_tokens"))
    return Usage(prompt_tokens(body), budget if explicit or budget == 0 else SAMPLE_OUTPUT_TOKENS)


def candidates(provider: ProviderConfig, model: str, req: RoutingRequest) -> list[RoutePlan]:
    """Every route the provider offers for ``model`` that fits the batch's window."""
    start, end = req.start, req.expires_at
    plans = [RoutePlan(provider.name, REALTIME, 0.0, provider.price_multiplier(model, start))]
    if end is None:
        return plans
    reserve = fallback_reserve(start, end)
    discount = provider.batch_discount(model)
    if discount is not None and provider.native_batch is not None \
            and start + provider.native_batch.turnaround_seconds + reserve <= end:
        plans.append(RoutePlan(provider.name, NATIVE_BATCH, 0.0, 1.0 - discount))
    for window in provider.off_peak_windows(model):
        span = window.next_span(start)
        if span is not None and span[0] > start and span[0] + reserve <= end:
            plans.append(RoutePlan(provider.name, OFF_PEAK, span[0], window.multiplier))
    return plans


def plan_model(catalogue: Catalogue, model: str, body: dict[str, Any], req: RoutingRequest) -> RoutePlan:
    """The cheapest feasible route for ``model`` (``body`` is a sample line), or the one the batch forces."""
    usable = deployments(catalogue, model, req)
    usage = sample_usage(req.endpoint, body)
    if req.route == REALTIME:
        first = usable[0]
        share = first.price_multiplier(model, req.start)
        return RoutePlan(first.name, REALTIME, 0.0, share, line_cost(first, model, usage) * share)
    options: list[tuple[float, int, int, RoutePlan]] = []
    for order, provider in enumerate(usable):
        full = line_cost(provider, model, usage)
        for plan in candidates(provider, model, req):
            if req.route in ("auto", plan.route):
                cost = full * plan.price_factor
                options.append((cost, ROUTE_PREFERENCE.index(plan.route), order,
                                dataclasses.replace(plan, line_cost_usd=cost)))
    if not options:
        raise InvalidRequest(
            f"No deployment of '{model}' can take route '{req.route}' within this batch's window: a native batch "
            "API needs its turnaround plus a reserve, an off-peak route needs a window that opens in time.",
            param="route", code="route_infeasible",
        )
    return min(options, key=lambda o: o[:3])[3]
