"""Stored files: bytes on disk under ``data_dir/files``, metadata in SQL."""

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from broker.access import get_owned
from broker.ids import new_id, now
from broker.tables import BatchRow, ScheduleRow, StoredFile
from schemas.files import FileObject

READ_CHUNK_BYTES = 1 << 20  #: content is streamed back in pieces this big
TEMP_PREFIX = ".upload-"  #: names of files being written (uploads, output files, fetched inputs) start with this
ORPHAN_TEMP_SECONDS = 3600.0  #: a temporary file untouched this long has no writer left (its process died)


class FileStore:
    """Where file bytes live. One directory; the file id is the file name."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def path_for(self, file_id: str) -> Path:
        return self.root / file_id

    def temp_path(self) -> Path:
        return self.root / f"{TEMP_PREFIX}{new_id('tmp')}"

    def sweep_orphans(self, older_than: float = ORPHAN_TEMP_SECONDS) -> int:
        """Delete temporary files nobody has written to for ``older_than`` seconds; returns how many."""
        cutoff = time.time() - older_than
        swept = 0
        with os.scandir(self.root) as entries:
            for entry in entries:
                if not entry.name.startswith(TEMP_PREFIX):
                    continue
                try:
                    if entry.stat().st_mtime < cutoff:
                        os.unlink(entry.path)
                        swept += 1
                except FileNotFoundError:  # its writer finished (or another sweeper took it) meanwhile
                    continue
        return swept

    def stream(self, path: Path, offset: int = 0) -> Iterator[bytes]:
        with path.open("rb") as fh:
            fh.seek(offset)
            while chunk := fh.read(READ_CHUNK_BYTES):
                yield chunk

    def stream_from_line(self, path: Path, first_line: int) -> Iterator[bytes]:
        """The bytes from the start of line ``first_line`` (0-based) on."""
        with path.open("rb") as fh:
            to_skip = first_line
            while to_skip and (chunk := fh.read(READ_CHUNK_BYTES)):
                newlines = chunk.count(b"\n")
                if newlines < to_skip:
                    to_skip -= newlines
                    continue
                cut = -1
                for _ in range(to_skip):
                    cut = chunk.index(b"\n", cut + 1)
                to_skip = 0
                if rest := chunk[cut + 1:]:
                    yield rest
            while chunk := fh.read(READ_CHUNK_BYTES):
                yield chunk

    def remove(self, path: Path) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def register_file(
    session: Session, store: FileStore, *, project_id: str, source: Path, filename: str, purpose: str,
    expires_after: int | None = None, file_id: str | None = None,
) -> StoredFile:
    """Move ``source`` into the store and record it (the caller's transaction commits both)."""
    file_id = file_id or new_id("file")
    target = store.path_for(file_id)
    os.replace(source, target)
    created = now()
    row = StoredFile(
        id=file_id, project_id=project_id, filename=filename, purpose=purpose,
        bytes=target.stat().st_size, created_at=created,
        expires_at=created + expires_after if expires_after else None, path=target.name,
    )
    session.add(row)
    return row


def complete_file(session: Session, store: FileStore, file_id: str, source: Path) -> bool:
    """Give a file that was announced early (a running batch's output) its final bytes; False if it is gone."""
    row = session.get(StoredFile, file_id)
    if row is None:  # deleted by its owner while the batch ran
        return False
    target = store.path_for(file_id)
    os.replace(source, target)
    row.bytes, row.status = target.stat().st_size, "processed"
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
        store.remove(store.path_for(row.id))
    return len(rows)
