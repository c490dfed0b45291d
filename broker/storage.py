"""File bytes: a local folder (embedded default) or an S3-compatible bucket (``s3://bucket/prefix``), through obstore.

Each file is one object whose key is the file id. Bytes stream both ways: uploads and outputs go up in parts
(S3 multipart above :data:`WRITE_PART_BYTES`), reads come down in chunks, so no file is ever held in memory.
Files the broker writes itself (output files, fetched schedule inputs) are first written to a temporary file in
the local ``spool`` folder, then moved in (a rename locally, an upload to a bucket).
"""

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import obstore
from obstore.store import LocalStore, S3Store

from broker.ids import new_id

if TYPE_CHECKING:
    from obstore import AsyncWritableFile
    from obstore.store import ObjectStore

READ_CHUNK_BYTES = 1 << 20  #: content is streamed back in pieces this big
WRITE_PART_BYTES = 8 << 20  #: an upload is sent in parts this big (S3's minimum part is 5 MiB)
WRITE_CONCURRENCY = 4  #: parts of one upload in flight at once (memory: parts x part size)
TEMP_PREFIX = ".upload-"  #: names of files being written (output files, fetched inputs) start with this
STAGING_MARK = "#"  #: obstore's local store stages a streamed upload as ``<key>#<n>`` until it completes
ORPHAN_TEMP_SECONDS = 3600.0  #: a temporary file untouched this long has no writer left (its process died)
PROBE_KEY = ".doctor-probe"  #: written, read and deleted by ``broker doctor``


def _open(url: str | None, root: Path) -> "ObjectStore":
    if url is None or url.startswith("file://"):
        folder = Path(url.removeprefix("file://")) if url else root
        folder.mkdir(parents=True, exist_ok=True)
        return LocalStore(folder.resolve())
    if not url.startswith("s3://"):
        raise ValueError(f"storage_url must be s3://bucket/prefix or file:///folder, not {url!r}")
    # Credentials, region and endpoint come from the standard AWS_* variables (AWS_ENDPOINT_URL for MinIO or R2,
    # AWS_ALLOW_HTTP=true for a plain-HTTP endpoint), as every S3 tool reads them.
    return S3Store.from_url(url)


class FileStore:
    """Where file bytes live: ``url`` (``s3://bucket/prefix``, ``file:///folder``) or, without one, the folder
    ``root``. ``root`` also holds the temporary files being written."""

    def __init__(self, root: Path, url: str | None = None) -> None:
        self.root, self.url = root, url
        self.root.mkdir(parents=True, exist_ok=True)
        self._store = _open(url, root)

    @property
    def is_local(self) -> bool:
        return isinstance(self._store, LocalStore)

    def describe(self) -> str:
        return self.url or str(self.root)

    def temp_path(self) -> Path:
        return self.root / f"{TEMP_PREFIX}{new_id('tmp')}"

    def discard_temp(self, path: Path) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

    def sweep_orphans(self, older_than: float = ORPHAN_TEMP_SECONDS) -> int:
        """Delete temporary files nobody has written to for ``older_than`` seconds; returns how many."""
        cutoff = time.time() - older_than
        swept = 0
        with os.scandir(self.root) as entries:
            for entry in entries:
                if not entry.name.startswith(TEMP_PREFIX) and STAGING_MARK not in entry.name:
                    continue
                try:
                    if entry.stat().st_mtime < cutoff:
                        os.unlink(entry.path)
                        swept += 1
                except FileNotFoundError:  # its writer finished (or another sweeper took it) meanwhile
                    continue
        return swept

    def put_path(self, key: str, source: Path) -> int:
        """Move the local file ``source`` in as ``key``; its size."""
        size = source.stat().st_size
        if self.is_local and self.url is None:
            os.replace(source, self.root / key)
            return size
        obstore.put(self._store, key, source, chunk_size=WRITE_PART_BYTES, max_concurrency=WRITE_CONCURRENCY)
        self.discard_temp(source)
        return size

    def writer(self, key: str) -> "AsyncWritableFile":
        """A streamed upload to ``key``: written in parts, visible once closed; leaving its ``async with`` by an
        exception abandons it."""
        return obstore.open_writer_async(self._store, key, buffer_size=WRITE_PART_BYTES,
                                         max_concurrency=WRITE_CONCURRENCY)

    def size(self, key: str) -> int:
        return int(obstore.head(self._store, key)["size"])

    def stream(self, key: str, offset: int = 0) -> Iterator[bytes]:
        options = {"range": {"offset": offset}} if offset else None
        result = obstore.get(self._store, key, options=options)  # type: ignore[arg-type]
        for chunk in result.stream(min_chunk_size=READ_CHUNK_BYTES):
            yield bytes(chunk)

    def lines(self, key: str) -> Iterator[bytes]:
        """The file's lines, each with its newline (the last may lack one), as iterating a binary file gives."""
        rest = b""
        for chunk in self.stream(key):
            parts = (rest + chunk).split(b"\n")
            rest = parts.pop()
            for part in parts:
                yield part + b"\n"
        if rest:
            yield rest

    def stream_from_line(self, key: str, first_line: int) -> Iterator[bytes]:
        """The bytes from the start of line ``first_line`` (0-based) on."""
        to_skip = first_line
        for chunk in self.stream(key):
            if to_skip:
                newlines = chunk.count(b"\n")
                if newlines < to_skip:
                    to_skip -= newlines
                    continue
                cut = -1
                for _ in range(to_skip):
                    cut = chunk.index(b"\n", cut + 1)
                to_skip = 0
                chunk = chunk[cut + 1:]
            if chunk:
                yield chunk

    def remove(self, key: str) -> None:
        try:
            obstore.delete(self._store, key)
        except FileNotFoundError:
            pass

    def check(self) -> None:
        """Write, read back and delete a small object; raises what the store answered if any step fails."""
        obstore.put(self._store, PROBE_KEY, b"ok")
        try:
            if bytes(obstore.get(self._store, PROBE_KEY).bytes()) != b"ok":
                raise OSError("the probe object read back differs from what was written")
        finally:
            self.remove(PROBE_KEY)
