"""Streaming multipart upload: the file part goes straight to the file store, counted against the size cap.

No database connection is held while the bytes arrive: a slow client costs a socket and a part buffer only."""

from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import Request
from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header

from broker.errors import InvalidRequest, PayloadTooLarge
from broker.storage import FileStore

if TYPE_CHECKING:
    from obstore import AsyncWritableFile

MAX_FIELD_BYTES = 64 * 1024  #: a non-file form field larger than this is refused


@dataclass
class Upload:
    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None
    size: int = 0


class _PartSink:
    """Collects one multipart body: text fields in memory, the ``file`` part's bytes in ``pending`` until the
    caller sends them on (the parser's callbacks cannot await)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.upload = Upload()
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._name = ""
        self._value = bytearray()
        self._in_file = False
        self.file_started = False
        self.pending: list[bytes] = []

    def on_part_begin(self) -> None:
        self._headers, self._value, self._name = {}, bytearray(), ""

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field, self._header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = options.get(b"name", b"").decode(errors="replace")
        if self._name == "file":
            filename = options.get(b"filename", b"upload.jsonl").decode(errors="replace")
            if "\x00" in filename:  # PostgreSQL text cannot hold NUL
                raise InvalidRequest("Null characters are not allowed in the filename.", param="file")
            self.upload.filename = filename or "upload.jsonl"
            self._in_file = self.file_started = True

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self.upload.size += end - start
            if self.upload.size > self.max_bytes:
                raise PayloadTooLarge(f"File exceeds the maximum upload size of {self.max_bytes} bytes.",
                                      param="file", code="file_too_large")
            self.pending.append(data[start:end])
            return
        self._value += data[start:end]
        if len(self._value) > MAX_FIELD_BYTES:
            raise InvalidRequest(f"Form field '{self._name}' is too large.", param=self._name)

    def on_part_end(self) -> None:
        if self._in_file:
            self._in_file = False
        elif self._name:
            self.upload.fields[self._name] = self._value.decode(errors="replace")

    def take(self) -> list[bytes]:
        pending, self.pending = self.pending, []
        return pending


async def _send(sink: _PartSink, writer: "AsyncWritableFile") -> None:
    for piece in sink.take():
        await writer.write(piece)


async def receive_upload(request: Request, store: FileStore, key: str, max_bytes: int) -> Upload:
    """Parse the multipart body, streaming its ``file`` part to ``key`` in ``store`` (complete once this returns;
    nothing is left under ``key`` if it raises before the file part ended)."""
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise InvalidRequest("Upload a file as multipart/form-data with fields 'file' and 'purpose'.")
    sink = _PartSink(max_bytes)
    parser = MultipartParser(boundary, {
        "on_part_begin": sink.on_part_begin, "on_part_data": sink.on_part_data,
        "on_part_end": sink.on_part_end, "on_header_field": sink.on_header_field,
        "on_header_value": sink.on_header_value, "on_header_end": sink.on_header_end,
        "on_headers_finished": sink.on_headers_finished,
    })
    try:
        async with AsyncExitStack() as stack:
            writer = None
            async for chunk in request.stream():
                parser.write(chunk)
                if sink.file_started and writer is None:
                    writer = await stack.enter_async_context(store.writer(key))
                if writer is not None:
                    await _send(sink, writer)
            parser.finalize()
            if writer is not None:
                await _send(sink, writer)
    except FormParserError as exc:  # a malformed body is the client's error
        raise InvalidRequest(f"The multipart body could not be parsed: {exc}") from None
    if sink.upload.filename is None:
        raise InvalidRequest("Missing required parameter: 'file'.", param="file")
    return sink.upload
