"""Tenant-scoped reads: every object is looked up within the caller's project (invariant 8)."""

from typing import Any, Literal, TypeVar

from sqlmodel import Session, SQLModel, select

from broker.errors import NotFound

Row = TypeVar("Row", bound=SQLModel)


def page(
    session: Session, table: type[Row], *filters: Any, after: str | None, limit: int,
    order: Literal["asc", "desc"] = "desc",
) -> tuple[list[Row], bool]:
    """Cursor pagination as OpenAI does it (``after`` is an object id).

    Returns the rows after the cursor, newest first by default (ids are time-ordered), and whether more follow.
    """
    id_col: Any = table.id  # type: ignore[attr-defined]
    query = select(table).where(*filters)
    if after:
        query = query.where(id_col < after if order == "desc" else id_col > after)
    query = query.order_by(id_col.desc() if order == "desc" else id_col.asc()).limit(limit + 1)
    rows = list(session.exec(query))
    return rows[:limit], len(rows) > limit


def get_owned(session: Session, table: type[Row], object_id: str, project_id: str, noun: str) -> Row:
    """The object if it exists in ``project_id``; another project's object is a 404, like a missing one."""
    row = session.get(table, object_id)
    if row is None or getattr(row, "project_id", None) != project_id:
        raise NotFound(f"No such {noun} object: {object_id}", param="id")
    return row
