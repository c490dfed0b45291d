"""Why a batch's lines failed, grouped: one SQL aggregate, then the first line of each group for its message."""

from typing import Any

import orjson
from sqlalchemy import func
from sqlmodel import Session, col, select

from broker.tables import Line
from schemas.failures import FailureGroup, FailureGroups


def _upstream_error(body: str | None) -> dict[str, Any]:
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return {}
    error = parsed.get("error") if isinstance(parsed, dict) else None
    return error if isinstance(error, dict) else {}


def failure_groups(session: Session, batch_id: str) -> FailureGroups:
    """The batch's failed lines by (error code, upstream status): count and the first line's message."""
    rows = session.exec(
        select(Line.error_code, Line.response_status, func.count(), func.min(Line.idx))
        .where(col(Line.batch_id) == batch_id, col(Line.status) == "failed")
        .group_by(col(Line.error_code), col(Line.response_status))
    ).all()
    groups: dict[tuple[str, int | None], FailureGroup] = {}
    for code, status, count, first_idx in rows:
        first = session.exec(select(Line).where(col(Line.batch_id) == batch_id, col(Line.idx) == first_idx)).one()
        upstream = _upstream_error(first.response_body)
        name = code or (str(upstream["code"]) if upstream.get("code") else f"http_{status}")
        message = first.error_message or (str(upstream["message"]) if upstream.get("message") else None)
        key = (name, status)
        if key in groups:  # the same upstream code under two of our codes' absence: add them up
            groups[key].count += count
            continue
        groups[key] = FailureGroup(code=name, status_code=status, count=count, message=message,
                                   custom_id=first.custom_id)
    return FailureGroups(data=sorted(groups.values(), key=lambda g: (-g.count, g.code)))
