"""Statements run on the database driver's own cursor, past SQLAlchemy's compile and parameter processing.

Only for the few statements a worker runs for every store and every release: SQLAlchemy's execution layer around
them (compiling, building and processing each bound value, wrapping the cursor) cost more CPU than the database did.
Each statement is written once with ``:name`` parameters and run with positional ones (SQLite's ``?``, psycopg's
``%s``), as SQLAlchemy's own dialects do: SQLite's driver bound a statement of 2,816 named parameters in 9.6 ms,
the same by position in 0.35 ms.
"""

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection

_NAMED = re.compile(r"(?<![:\w]):(\w+)")  #: ``:name``, not a ``::type`` cast nor ``10:30`` in a literal

Params = dict[str, Any]


class DriverSQL:
    """One statement, its ``:name`` parameters made positional for SQLite and for psycopg."""

    __slots__ = ("_names", "postgresql", "sqlite")

    def __init__(self, sql: str) -> None:
        self._names = tuple(match.group(1) for match in _NAMED.finditer(sql))  #: the parameters, in order
        self.sqlite = _NAMED.sub("?", sql)
        self.postgresql = _NAMED.sub("%s", sql.replace("%", "%%"))

    def run(self, conn: Connection, params: Params) -> list[tuple[Any, ...]]:
        """Execute in ``conn``'s transaction (begun now if it has not been); returns the rows, if any."""
        cursor = self._cursor(conn)
        try:
            cursor.execute(self._text(conn), [params[name] for name in self._names])
            return list(cursor.fetchall()) if cursor.description else []
        finally:
            cursor.close()

    def run_many(self, conn: Connection, params: Sequence[Params]) -> None:
        cursor = self._cursor(conn)
        try:
            cursor.executemany(self._text(conn), [[row[name] for name in self._names] for row in params])
        finally:
            cursor.close()

    def _text(self, conn: Connection) -> str:
        return self.postgresql if conn.dialect.name == "postgresql" else self.sqlite

    @staticmethod
    def _cursor(conn: Connection) -> Any:
        if not conn.in_transaction():  # the statement belongs to the caller's transaction, never autocommitted
            conn.begin()
        return conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
