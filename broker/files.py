"""Stored files: bytes in the file store (broker/storage.py), metadata in SQL."""

from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from broker.access import get_owned
from broker.ids import new_id, now
from broker.storage import FileStore
from broker.tables import BatchRow, ScheduleRow, StoredFile
from schemas.files import FileObject


def register_file(
    session: Session, store: FileStore, *, project_id: str, source: Path, filename: str, purpose: str,
    expires_after: int | None = None, file_id: str | None = None,
) -> StoredFile:
    """Move the local file ``source`` into the store and record it (the caller's transaction commits the row)."""
    file_id = file_id or new_id("file")
    size = store.put_path(file_id, source)
    return record_file(session, file_id=file_id, size=size, project_id=project_id, filename=filename,
                       purpose=purpose, expires_after=expires_after)


def record_file(
    session: Session, *, file_id: str, size: int, project_id: str, filename: str, purpose: str,
    expires_after: int | None = None,
) -> StoredFile:
    """Record a file whose bytes are already in the store as ``file_id``."""
    created = now()
    row = StoredFile(
        id=file_id, project_id=project_id, filename=filename, purpose=purpose, bytes=size, created_at=created,
        expires_at=created + expires_after if expires_after else None, path=file_id,
    )
    session.add(row)
    return row


def complete_file(session: Session, file_id: str, size: int) -> bool:
    """Mark a file that was announced early (a running batch's output) complete with its final size (its bytes
    are in the store); False if its row is gone (deleted by its owner while the batch ran)."""
    row = session.get(StoredFile, file_id)
    if row is None:
        return False
    row.bytes, row.status = size, "processed"
    session.add(row)
    return True


def get_file(session: Session, project_id: str, file_id: str) -> StoredFile:
    return get_owned(session, StoredFile, file_id, project_id, "File")


def to_wire(row: StoredFile) -> FileObject:
    return FileObject(
        id=row.id, bytes=row.bytes, created_at=row.created_at, filename=row.filename, purpose=row.purpose,
        status=row.status,
        expires_at=row.expires_at,
    )


def _in_use() -> tuple[Any, ...]:
    """Files still needed despite their expiry: a schedule's stored input, a batch input not yet read."""
    scheduled = select(ScheduleRow.input_file_id).where(col(ScheduleRow.input_file_id).is_not(None))
    validating = select(BatchRow.input_file_id).where(col(BatchRow.status) == "validating")
    return col(StoredFile.id).not_in(scheduled), col(StoredFile.id).not_in(validating)


def purge_expired(engine: Engine, store: FileStore, limit: int = 500) -> int:
    """Delete files whose ``expires_at`` has passed (rows and bytes), unless still in use; returns how many."""
    with Session(engine) as session:
        rows = list(session.exec(
            select(StoredFile).where(col(StoredFile.expires_at) < now(), *_in_use()).limit(limit)
        ))
        for row in rows:
            session.delete(row)
        session.commit()
    for row in rows:
        store.remove(row.id)
    return len(rows)
