"""Statements run on the database driver's own cursor, past SQLAlchemy's compile and parameter processing.

Only for the few statements a worker runs for every store and every release: SQLAlchemy's execution layer around
them (compiling, building and processing each bound value, wrapping the cursor) cost more CPU than the database did.
Each statement is written once with ``:name`` parameters and kept in both drivers' paramstyles.
"""

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection

_NAMED = re.compile(r"(?<![:\w]):(\w+)")  #: ``:name``, not a ``::type`` cast nor ``10:30`` in a literal

Params = dict[str, Any]


class DriverSQL:
    """One statement in SQLite's ``:name`` and psycopg's ``%(name)s`` paramstyles."""

    __slots__ = ("postgresql", "sqlite")

    def __init__(self, sql: str) -> None:
        self.sqlite = sql
        self.postgresql = _NAMED.sub(r"%(\1)s", sql.replace("%", "%%"))

    def run(self, conn: Connection, params: Params) -> list[tuple[Any, ...]]:
        """Execute in ``conn``'s transaction (begun now if it has not been); returns the rows, if any."""
        cursor = self._cursor(conn)
        try:
            cursor.execute(self._text(conn), params)
            return list(cursor.fetchall()) if cursor.description else []
        finally:
            cursor.close()

    def run_many(self, conn: Connection, params: Sequence[Params]) -> None:
        cursor = self._cursor(conn)
        try:
            cursor.executemany(self._text(conn), params)
        finally:
            cursor.close()

    def _text(self, conn: Connection) -> str:
        return self.postgresql if conn.dialect.name == "postgresql" else self.sqlite

    @staticmethod
    def _cursor(conn: Connection) -> Any:
        if not conn.in_transaction():  # the statement belongs to the caller's transaction, never autocommitted
            conn.begin()
        return conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
