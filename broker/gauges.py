"""Gauges read at scrape time: what SQL knows (the source of truth, shared by every process) and what a queue holds.

Each query is cheap: open lines are counted through the ``(provider, status, lease_until)`` index, one range per
provider and status (work still to do, never the history); batches and provider state are small tables; pending
webhook deliveries through their ``(status, next_attempt_at)`` index. The API process serves these on ``/metrics``;
every API replica reads the same rows, so dashboards take ``max`` over instances, never ``sum``.
"""

import time
from collections.abc import Callable, Iterable, Mapping

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from sqlalchemy import Connection, Engine, bindparam, text

from broker.catalogue import Catalogue
from broker.provider_state import STALE_SECONDS

OPEN_STATUSES = ("pending", "queued", "batched")  #: waiting, leased to a worker, inside a native batch
LIMITS = ("max_concurrency", "rpm", "tpm")


class SqlGauges:
    """Lines, batches, webhook backlog and provider limits, read from SQL on each scrape."""

    def __init__(self, engine: Engine, catalogue: Catalogue) -> None:
        self.engine, self.catalogue = engine, catalogue

    def collect(self) -> Iterable[Metric]:
        with self.engine.connect() as conn:
            return [self._lines(conn), *self._batches(conn), *self._webhooks(conn), *self._limits(conn)]

    def _lines(self, conn: Connection) -> Metric:
        family = GaugeMetricFamily("broker_lines", "Lines not ended yet by provider and status: pending (waiting "
                                   "to be released), queued (leased to a worker), batched (in a native batch)",
                                   labels=["provider", "status"])
        providers = sorted(self.catalogue.providers)
        counts = {(p, s): n for p, s, n in conn.execute(
            text("SELECT provider, status, count(*) FROM line WHERE provider IN :providers AND status IN :statuses "
                 "GROUP BY provider, status").bindparams(bindparam("providers", expanding=True),
                                                         bindparam("statuses", expanding=True)),
            {"providers": providers, "statuses": list(OPEN_STATUSES)})}
        for provider in providers:
            for status in OPEN_STATUSES:
                family.add_metric([provider, status], counts.get((provider, status), 0))
        return family

    def _batches(self, conn: Connection) -> list[Metric]:
        batches = GaugeMetricFamily("broker_batches", "Batches by status", labels=["status"])
        ended = GaugeMetricFamily("broker_batch_lines_ended", "Lines ended in every batch kept, by outcome",
                                  labels=["status"])
        completed = failed = 0
        for status, n, done, bad in conn.execute(
                text("SELECT status, count(*), sum(completed), sum(failed) FROM batch GROUP BY status")):
            batches.add_metric([status], n)
            completed, failed = completed + (done or 0), failed + (bad or 0)
        ended.add_metric(["completed"], completed)
        ended.add_metric(["failed"], failed)
        return [batches, ended]

    def _webhooks(self, conn: Connection) -> list[Metric]:
        n, oldest = conn.execute(text("SELECT count(*), min(created_at) FROM webhook_delivery "
                                      "WHERE status = 'pending'")).one()
        age = max(0.0, time.time() - oldest) if oldest is not None else 0.0
        return [GaugeMetricFamily("broker_webhook_outbox_pending", "Webhook deliveries neither delivered nor given "
                                  "up", value=n),
                GaugeMetricFamily("broker_webhook_outbox_oldest_seconds", "Age of the oldest pending delivery "
                                  "(0: none)", value=age)]

    def _limits(self, conn: Connection) -> list[Metric]:
        configured = GaugeMetricFamily("broker_provider_limit_configured", "Limits in the provider catalogue "
                                       "(absent: no limit)", labels=["provider", "limit"])
        in_force = GaugeMetricFamily("broker_provider_limit_in_force", "Limits in force: the lowest any live worker "
                                     "holds after 429s and x-ratelimit headers, else the configured one",
                                     labels=["provider", "limit"])
        held: dict[tuple[str, str], float] = {}
        for provider, rpm, tpm in conn.execute(
                text("SELECT provider, rpm_in_force, tpm_in_force FROM provider_state WHERE updated_at >= :fresh"),
                {"fresh": time.time() - STALE_SECONDS}):
            for limit, value in (("rpm", rpm), ("tpm", tpm)):
                if value is not None:
                    held[(provider, limit)] = min(value, held.get((provider, limit), value))
        for name, provider in sorted(self.catalogue.providers.items()):
            for limit in LIMITS:
                value = getattr(provider, limit)
                if value is not None:
                    configured.add_metric([name, limit], value)
                if (now := held.get((name, limit), value)) is not None:
                    in_force.add_metric([name, limit], now)
        return [configured, in_force]


class ScrapeGauge:
    """One gauge whose values ``read`` gives at scrape time, as ``{label values: value}``."""

    def __init__(self, name: str, documentation: str, labels: list[str],
                 read: Callable[[], Mapping[tuple[str, ...], float]]) -> None:
        self.name, self.documentation, self.labels, self.read = name, documentation, labels, read

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labels)
        for values, value in sorted(self.read().items()):
            family.add_metric(list(values), value)
        return [family]
