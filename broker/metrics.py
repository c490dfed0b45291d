"""Prometheus metrics a broker process counts itself, and the one function per event that counts them.

Every role counts what happens in its own process (prometheus-client's default registry): workers the upstream
calls and what they used, the planner its ticks and the leases it took back, the API the interactive calls it
makes. Each process exposes its own numbers (the API on ``/metrics``, a planner or worker on
``--metrics-port``) and Prometheus sums them across instances. What lives in SQL (lines by status, batches,
webhook backlog, limits in force) is read at scrape time by :mod:`broker.gauges` instead, so it is never counted
twice and survives restarts.

Label values: ``route`` is the way a call or request went: ``realtime``, ``off_peak`` and ``native_batch`` for
batch lines, :data:`INTERACTIVE` for calls made for a caller waiting on the line (the real-time gateway), so
dashboards can split interactive from batch traffic. ``model`` is the public model name (the catalogue's).
"""

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from broker.errors import UpstreamError

INTERACTIVE = "interactive"  #: route label of calls made for a waiting caller (not a batch line)
#: upstream call latency buckets, seconds: a fast embedding call up to a long chat completion
CALL_SECONDS_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
#: planner tick buckets, seconds: an idle tick takes milliseconds
TICK_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series: resets are detected without them
_CALL = ("provider", "model", "route")
UPSTREAM_CALLS = Counter("broker_upstream_calls", "Upstream calls by outcome: the HTTP status, or an error code "
                         "when there was no answer (upstream_timeout, upstream_connection_error, ...)",
                         [*_CALL, "code"])
UPSTREAM_SECONDS = Histogram("broker_upstream_call_seconds", "Upstream call latency, whatever the outcome",
                             _CALL, buckets=CALL_SECONDS_BUCKETS)
UPSTREAM_IN_FLIGHT = Gauge("broker_upstream_in_flight", "Upstream calls running in this process", _CALL)
REQUESTS = Counter("broker_requests", "Requests served (a batch line that succeeded, an interactive call), as "
                   "GET /v1/usage counts them", _CALL)
TOKENS = Counter("broker_tokens", "Tokens used by served requests", [*_CALL, "direction"])
COST = Counter("broker_cost_usd", "Cost of served requests in USD (the route's price: discounts, off-peak)", _CALL)
LEASES_TAKEN_BACK = Counter("broker_leases_taken_back", "Expired line leases the planner took back: retried (pending "
                            "again) or failed (worker_lost, no attempts left)", ["provider", "outcome"])
PLANNER_TICK_SECONDS = Histogram("broker_planner_tick_seconds", "Time of one planner tick (every step, every "
                                 "provider)", buckets=TICK_SECONDS_BUCKETS)
PLANNER_TICK_FAILURES = Counter("broker_planner_tick_failures", "Planner ticks that raised (the next tick retries)")


M = TypeVar("M", bound=MetricWrapperBase)
_children: dict[tuple[Any, ...], Any] = {}


def _child(metric: M, *labels: str) -> M:
    """``metric.labels(*labels)``, kept: prometheus-client checks the values and takes a lock on every call, a
    tenth of a batch line's metrics CPU. Children are never removed, so a kept one stays the metric's."""
    key = (metric, *labels)
    if (child := _children.get(key)) is None:
        child = _children[key] = metric.labels(*labels)
    return child


def call_code(exc: UpstreamError) -> str:
    """The ``code`` label of a failed call: the upstream's error status, else our error code."""
    return str(exc.status) if exc.status is not None and exc.status >= 400 else exc.code


def record_call(provider: str, model: str | None, route: str, code: int | str, seconds: float) -> None:
    """One upstream call ended: ``code`` is its HTTP status (``200``, ``429``, ...) or :func:`call_code`."""
    _child(UPSTREAM_CALLS, provider, model or "", route, str(code)).inc()
    _child(UPSTREAM_SECONDS, provider, model or "", route).observe(seconds)


def record_usage(provider: str, model: str | None, route: str, input_tokens: int, output_tokens: int,
                 cost_usd: float, requests: int = 1) -> None:
    """``requests`` served (succeeded) with their tokens and cost."""
    labels = (provider, model or "", route)
    _child(REQUESTS, *labels).inc(requests)
    _child(TOKENS, *labels, "input").inc(input_tokens)
    _child(TOKENS, *labels, "output").inc(output_tokens)
    _child(COST, *labels).inc(cost_usd)


@contextmanager
def in_flight(provider: str, model: str | None, route: str) -> Iterator[None]:
    """Counts the block as an upstream call in flight."""
    gauge = _child(UPSTREAM_IN_FLIGHT, provider, model or "", route)
    gauge.inc()
    try:
        yield
    finally:
        gauge.dec()


def leases_taken_back(provider: str, retried: int, failed: int) -> None:
    LEASES_TAKEN_BACK.labels(provider, "retried").inc(retried)
    LEASES_TAKEN_BACK.labels(provider, "failed").inc(failed)


@contextmanager
def planner_tick() -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    except Exception:
        PLANNER_TICK_FAILURES.inc()
        raise
    finally:
        PLANNER_TICK_SECONDS.observe(time.perf_counter() - start)


class _Process(Collector):
    """This process' own metrics (the default registry) inside another registry."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def exposition(*collectors: Collector) -> CollectorRegistry:
    """A registry with this process' metrics and ``collectors`` (scrape-time ones of one app or process)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Process())
    for collector in collectors:
        registry.register(collector)
    return registry

