"""On PostgreSQL (no database-wide write lock, unlike SQLite): planners ticking at once still fire a run once."""

import time
from pathlib import Path

import pytest

from broker.db import make_engine
from broker.migrate import upgrade
from broker.storage import FileStore
from tests import harness
from tests.unit.test_schedules import add_schedules, batches_by_schedule, fire_from_threads, make_due

pytestmark = pytest.mark.integration


def test_concurrent_planners_on_postgres_create_one_batch_per_due_time(pg_url: str, tmp_path: Path) -> None:
    settings = harness.test_settings(tmp_path, database_url=pg_url)
    engine = make_engine(pg_url)
    upgrade(engine)
    store = FileStore(settings.files_dir)
    try:
        ids = add_schedules(engine, store, 8)
        for round_ in (1, 2, 3):
            make_due(engine, int(time.time()) - round_)
            created = fire_from_threads(engine, settings, store, threads=6)
            assert len(created) == len(set(created)) == 8, created
            per_schedule = batches_by_schedule(engine)
            assert {sid: len(per_schedule[sid]) for sid in ids} == {sid: round_ for sid in ids}
    finally:
        engine.dispose()
