"""Bulk writes of line rows: COPY on PostgreSQL, executemany on SQLite; never one INSERT per line."""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection

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


def id_list_match(conn: Connection, column: str, ids: Sequence[int]) -> tuple[str, object]:
    """A ``column`` matches one of ``ids`` clause and its ``:ids`` parameter: one bound value however many ids."""
    if conn.dialect.name == "sqlite":
        return f"{column} IN (SELECT value FROM json_each(:ids))", "[" + ",".join(map(str, ids)) + "]"
    return f"{column} = ANY(CAST(:ids AS BIGINT[]))", list(ids)
