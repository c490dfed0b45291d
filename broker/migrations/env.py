"""Alembic environment: runs against the engine handed over in ``config.attributes['connection']``."""

from alembic import context
from sqlmodel import SQLModel

import broker.tables  # noqa: F401  (registers the tables on SQLModel.metadata)

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=SQLModel.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
