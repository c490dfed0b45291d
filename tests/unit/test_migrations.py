"""The Alembic migrations build exactly the schema the SQLModel tables describe, on SQLite and PostgreSQL."""

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

import broker.tables  # noqa: F401
from broker.db import make_engine
from broker.migrate import upgrade


def test_upgrade_creates_every_table_and_matches_the_models(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/m.db")
    upgrade(engine)
    upgrade(engine)  # idempotent: a second run is a no-op
    assert {"project", "api_key", "file", "batch", "line", "alembic_version"} <= set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == [], f"tables and migrations disagree; write a migration: {diff}"
    engine.dispose()
