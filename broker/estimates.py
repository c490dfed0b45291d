"""Estimating a batch file before it runs: tokens and cost per model and per candidate route.

Input tokens are counted the way providers count them at admission (broker/tokens.py). Output tokens are
predicted from history: the project's average output per request for that model (from the daily usage roll-up),
capped by each line's max tokens; with no history yet, each line's max tokens or DEFAULT_OUTPUT_GUESS.
"""

import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson
from sqlalchemy import text
from sqlmodel import Session

from broker.catalogue import Catalogue, ProviderConfig
from broker.pricing import Usage, line_cost
from broker.routing import NATIVE_BATCH, OFF_PEAK, REALTIME
from broker.tokens import output_budget, prompt_tokens

DEFAULT_OUTPUT_GUESS = 256  #: output tokens per chat line assumed with no history and no max tokens


@dataclass
class ModelEstimate:
    model: str
    lines: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    routes: list[tuple[str, str, float]] = field(default_factory=list)  #: (provider, route, cost USD)


def _average_output(session: Session, project_id: str, model: str) -> float | None:
    row = session.connection().execute(
        text("SELECT sum(output_tokens), sum(requests) FROM usage_daily WHERE project_id = :p AND model = :m"),
        {"p": project_id, "m": model},
    ).one()
    return row[0] / row[1] if row[1] else None


def route_prices(provider: ProviderConfig, model: str) -> list[tuple[str, float]]:
    """Each route the provider offers for ``model`` and its share of the real-time price (now, for real time)."""
    prices = [(REALTIME, provider.price_multiplier(model, time.time()))]
    if (discount := provider.batch_discount(model)) is not None:
        prices.append((NATIVE_BATCH, 1.0 - discount))
    if windows := provider.off_peak_windows(model):
        prices.append((OFF_PEAK, min(w.multiplier for w in windows)))
    return prices


def estimate_file(session: Session, catalogue: Catalogue, lines: Iterable[bytes],
                  project_id: str) -> list[ModelEstimate]:
    per_model: dict[str, ModelEstimate] = {}
    budgets: dict[str, list[int]] = defaultdict(list)
    for raw in lines:
        try:
            line = orjson.loads(raw)
            body, url = line["body"], line.get("url", "")
            model = body["model"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue  # validation reports bad lines; the estimate covers the good ones
        if not isinstance(model, str) or not isinstance(body, dict):
            continue
        est = per_model.setdefault(model, ModelEstimate(model))
        est.lines += 1
        est.input_tokens += prompt_tokens(body)
        explicit = any(isinstance(body.get(k), int) for k in ("max_completion_tokens", "max_tokens",
                                                              "max_output_tokens"))
        cap = output_budget(url, body)
        budgets[model].append(cap if explicit or cap == 0 else -1)
    for model, est in per_model.items():
        history = _average_output(session, project_id, model)
        guess = history if history is not None else DEFAULT_OUTPUT_GUESS
        est.output_tokens = round(sum(0 if cap == 0 else guess if cap < 0 else min(guess, cap)
                                      for cap in budgets[model]))
        for provider in catalogue.deployments(model):
            cost = line_cost(provider, model, Usage(est.input_tokens, est.output_tokens))
            est.routes.extend((provider.name, route, cost * share) for route, share in route_prices(provider, model))
    return sorted(per_model.values(), key=lambda e: e.model)
