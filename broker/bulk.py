"""Bulk writes of line rows: COPY on PostgreSQL, executemany on SQLite; never one INSERT per line."""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection

from broker.driver_sql import DriverSQL

LINE_COLUMNS = ("batch_id", "idx", "custom_id", "body", "provider", "status", "attempts", "not_before",
                "input_tokens", "output_tokens")
LineRow = tuple[str, int, str, str, str, str, int, float, int, int]


def insert_lines(conn: Connection, rows: Sequence[LineRow]) -> None:
    if not rows:
        return
    columns = ", ".join(LINE_COLUMNS)
    if conn.dialect.name == "postgresql":
        driver_conn: Any = conn.connection.driver_connection
        with driver_conn.cursor() as cur, cur.copy(f"COPY line ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    marks = ", ".join("?" for _ in LINE_COLUMNS)
    conn.exec_driver_sql(f"INSERT INTO line ({columns}) VALUES ({marks})", list(rows))


def id_match_sql(dialect: str, column: str) -> str:
    """SQL in ``dialect``: ``column`` matches one of the ids in the ``:ids`` parameter (see :func:`id_list_param`)."""
    if dialect == "sqlite":
        return f"{column} IN (SELECT value FROM json_each(:ids))"
    return f"{column} = ANY(CAST(:ids AS BIGINT[]))"


def id_list_param(conn: Connection, ids: Sequence[int]) -> object:
    """``ids`` as the one bound value :func:`id_match_sql` takes, however many they are."""
    return "[" + ",".join(map(str, ids)) + "]" if conn.dialect.name == "sqlite" else list(ids)


def id_list_match(conn: Connection, column: str, ids: Sequence[int]) -> tuple[str, object]:
    """A ``column`` matches one of ``ids`` clause and its ``:ids`` parameter."""
    return id_match_sql(conn.dialect.name, column), id_list_param(conn, ids)


_LOCK_LINES = DriverSQL(f"SELECT id FROM line WHERE {id_match_sql('postgresql', 'id')} ORDER BY id FOR UPDATE")


def lock_lines(conn: Connection, ids: Sequence[int]) -> None:
    """Lock line rows in id order before a write to many of them (PostgreSQL; SQLite has a single writer).

    An UPDATE locks rows in whatever order its plan visits them; two writers sharing lines could then each hold
    one the other waits for. Taking the locks first, sorted, makes every writer queue in the same order.
    """
    if conn.dialect.name == "postgresql" and ids:
        _LOCK_LINES.run(conn, {"ids": sorted(set(ids))})
