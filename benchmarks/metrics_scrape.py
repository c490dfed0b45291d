"""Scrape cost: the time ``GET /metrics`` spends reading SQL (broker/gauges.py) as the line table grows.

Issue "See it", item "Prometheus /metrics": the gauges must stay cheap indexed queries. In this process, on a
fresh database (SQLite; PostgreSQL too with ``--postgres``), the exposition the API serves is rendered
(``generate_latest`` of the same registry as ``/metrics``: SQL gauges plus this process' counters), median and
p95 over ``--scrapes`` renders, in three states:

1. empty database (the reference);
2. ``--lines`` lines ended (one batch, every line ``succeeded`` in one UPDATE; on PostgreSQL then vacuumed and
   analysed, as autovacuum would) plus a 1,000-line batch pending: history only, target: at most 5 ms more
   than the reference (ended lines are never counted one by one);
3. the same with ``--lines`` more lines pending: an open backlog is counted through the
   ``(provider, status, lease_until)`` index, so this one grows with the backlog (shown, no target); on
   PostgreSQL also once vacuumed (as autovacuum leaves a table after inserts: index-only scans then skip the heap).

Run: ``python -m benchmarks.metrics_scrape`` (1M lines, a few minutes on 2 cores); quick: ``--lines 100000``;
with PostgreSQL: ``--postgres [postgresql://postgres@127.0.0.1:5432/test]``.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from prometheus_client import generate_latest
from sqlalchemy import text

from benchmarks._common import postgres_database, print_table
from benchmarks.scale import add_batches
from broker.core import Core
from broker.gauges import SqlGauges
from broker.metrics import exposition
from broker.settings import Settings

HISTORY_TARGET_MS = 5.0  #: what a big history of ended lines may add to a scrape, at most


def scrape_ms(core: Core, scrapes: int) -> tuple[float, float]:
    registry = exposition(SqlGauges(core.engine, core.catalogue))
    samples = []
    for _ in range(scrapes):
        start = time.perf_counter()
        generate_latest(registry)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), sorted(samples)[max(0, round(0.95 * len(samples)) - 1)]


def vacuum(core: Core) -> None:
    with core.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE line"))


def run(name: str, url: str, root: Path, lines: int, scrapes: int) -> list[list[object]]:
    core = Core.open(Settings(data_dir=root / name, database_url=url, auth_disabled=True))
    rows: list[list[object]] = []
    postgres = core.engine.dialect.name == "postgresql"
    try:
        empty, _ = scrape_ms(core, scrapes)
        rows.append([name, "empty database", f"{empty:.2f}", "", "reference"])
        print(f"[{name}] {lines:,} lines, then marked succeeded", flush=True)
        add_batches(core, "history", 1, lines)
        with core.engine.begin() as conn:
            conn.execute(text("UPDATE line SET status = 'succeeded'"))
            conn.execute(text("UPDATE batch SET status = 'completed', completed = total"))
        if postgres:  # what autovacuum does after so many updates
            vacuum(core)
        add_batches(core, "open", 1, 1_000)
        median, p95 = scrape_ms(core, scrapes)
        ok = "met" if median - empty <= HISTORY_TARGET_MS else "NOT met"
        rows.append([name, f"{lines:,} ended + 1,000 pending", f"{median:.2f}", f"{p95:.2f}",
                     f"+{median - empty:.2f} ms ({ok}: <= +{HISTORY_TARGET_MS:.0f} ms)"])
        print(f"[{name}] + {lines:,} lines pending", flush=True)
        add_batches(core, "backlog", 1, lines)
        median, p95 = scrape_ms(core, scrapes)
        rows.append([name, f"{lines:,} ended + {lines + 1_000:,} pending", f"{median:.2f}", f"{p95:.2f}",
                     f"+{median - empty:.2f} ms (no target)"])
        if postgres:
            vacuum(core)
            median, p95 = scrape_ms(core, scrapes)
            rows.append([name, "the same, vacuumed", f"{median:.2f}", f"{p95:.2f}",
                         f"+{median - empty:.2f} ms (no target)"])
    finally:
        core.engine.dispose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000, help="lines ended, then lines pending")
    parser.add_argument("--scrapes", type=int, default=30, help="renders timed per state")
    parser.add_argument("--postgres", nargs="?", const="postgresql://postgres@127.0.0.1:5432/test", default=None,
                        help="also run on PostgreSQL (admin URL; a database is created and dropped)")
    args = parser.parse_args()
    rows: list[list[object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rows += run("sqlite", f"sqlite:///{root}/broker.db", root, args.lines, args.scrapes)
        if args.postgres:
            with postgres_database(args.postgres) as url:
                rows += run("postgresql", url, root, args.lines, args.scrapes)
    print_table("GET /metrics: SQL gauges rendered (ms)", ["database", "line table", "median", "p95", "vs empty"],
                rows)


if __name__ == "__main__":
    main()
