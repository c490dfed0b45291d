"""Schema migrations (Alembic), run by ``broker db upgrade`` and at the start of every broker process."""

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


MIGRATION_LOCK_ID = 7_310_241  #: PostgreSQL advisory lock held while migrating


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision``; safe when several processes start at once (they take turns)."""
    cfg = alembic_config(engine)
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def autogenerate(engine: Engine, message: str) -> None:
    """Write a new revision from the difference between the tables and the database (developers only)."""
    cfg = alembic_config(engine)
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.revision(cfg, message=message, autogenerate=True)


def schema_is_current(engine: Engine) -> tuple[bool, str]:
    """Whether the database is at the newest migration, and its revision ("none" before the first)."""
    heads = set(ScriptDirectory.from_config(alembic_config(engine)).get_heads())
    with engine.connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    return current == heads, ", ".join(sorted(current)) or "none"
