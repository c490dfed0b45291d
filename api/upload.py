"""Streaming multipart upload: the file part goes straight to disk, counted against the size cap."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from fastapi import Request
from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header

from broker.errors import InvalidRequest, PayloadTooLarge

MAX_FIELD_BYTES = 64 * 1024  #: a non-file form field larger than this is refused


@dataclass
class Upload:
    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None
    size: int = 0


class _PartSink:
    """Collects one multipart body: text fields in memory, the ``file`` part into ``target``."""

    def __init__(self, target: Path, max_bytes: int) -> None:
        self.target, self.max_bytes = target, max_bytes
        self.upload = Upload()
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._name = ""
        self._value = bytearray()
        self._fh: IO[bytes] | None = None

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
            self._fh = self.target.open("wb")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._fh is not None:
            self.upload.size += end - start
            if self.upload.size > self.max_bytes:
                raise PayloadTooLarge(f"File exceeds the maximum upload size of {self.max_bytes} bytes.",
                                      param="file", code="file_too_large")
            self._fh.write(data[start:end])
            return
        self._value += data[start:end]
        if len(self._value) > MAX_FIELD_BYTES:
            raise InvalidRequest(f"Form field '{self._name}' is too large.", param=self._name)

    def on_part_end(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        elif self._name:
            self.upload.fields[self._name] = self._value.decode(errors="replace")

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


async def receive_upload(request: Request, target: Path, max_bytes: int) -> Upload:
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise InvalidRequest("Upload a file as multipart/form-data with fields 'file' and 'purpose'.")
    sink = _PartSink(target, max_bytes)
    parser = MultipartParser(boundary, {
        "on_part_begin": sink.on_part_begin, "on_part_data": sink.on_part_data,
        "on_part_end": sink.on_part_end, "on_header_field": sink.on_header_field,
        "on_header_value": sink.on_header_value, "on_header_end": sink.on_header_end,
        "on_headers_finished": sink.on_headers_finished,
    })
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except FormParserError as exc:  # a malformed body is the client's error
        raise InvalidRequest(f"The multipart body could not be parsed: {exc}") from None
    finally:
        sink.close()
    if sink.upload.filename is None:
        raise InvalidRequest("Missing required parameter: 'file'.", param="file")
    return sink.upload
