"""Result lines as OpenAI writes them, rendered from line rows; shared by finalization and partial reads.

Both files list lines in the order they ended (``result_seq``), so a reader of a running batch's output can
resume at a line offset and never miss a line. Lines closed at the end (expired, cancelled) come last.
"""

from collections.abc import Iterator
from typing import Any

import orjson
from sqlalchemy import Connection, text

from broker.ids import new_id

STREAM_ROWS = 2_000  #: line rows fetched per round trip

_SELECT = ("SELECT id, custom_id, response_status, response_body, request_id, error_code, error_message FROM line "
           "WHERE batch_id = :b AND status = :s ORDER BY result_seq NULLS LAST, idx")


def render(line_id: int, custom_id: str, r_status: int | None, r_body: str | None, request_id: str | None,
           e_code: str | None, e_msg: str | None) -> bytes:
    """One JSONL line: ``response`` when the upstream answered over HTTP, else ``error``."""
    head = orjson.dumps({"id": f"batch_req_{line_id:016x}", "custom_id": custom_id})[:-1]
    if r_status is not None:
        response = orjson.dumps({"status_code": r_status, "request_id": request_id or new_id("req")})[:-1]
        body = (r_body or "{}").encode()
        return head + b',"response":' + response + b',"body":' + body + b'},"error":null}\n'
    error: dict[str, Any] = {"code": e_code or "unknown_error", "message": e_msg or ""}
    return head + b',"response":null,"error":' + orjson.dumps(error) + b"}\n"


def iter_lines(conn: Connection, batch_id: str, succeeded: bool, offset: int = 0,
               limit: int | None = None) -> Iterator[bytes]:
    """The output (``succeeded``) or error file's lines from ``offset`` on, at most ``limit`` of them."""
    sql = _SELECT + (" LIMIT :limit" if limit is not None else " LIMIT -1" if conn.dialect.name == "sqlite" else "")
    sql += " OFFSET :offset"
    params = {"b": batch_id, "s": "succeeded" if succeeded else "failed", "offset": offset, "limit": limit}
    result = conn.execution_options(stream_results=True, yield_per=STREAM_ROWS).execute(text(sql), params)
    for row in result:
        yield render(*row)
