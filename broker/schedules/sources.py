"""A schedule's ``input_url``: where each run reads its input file when the schedule has no stored one.

Two kinds. ``https://…`` or ``http://…`` is downloaded at each run through the webhook SSRF guard
(``broker.webhooks.ssrf``: resolved once, every address public unless ``Settings.schedule_url_allow_hosts`` allows
it, the request sent to the address checked, redirects not followed). ``file:///a/folder`` names a folder under one
of ``Settings.schedule_folders``; each run copies the newest ``*.jsonl`` file in it by modification time (hidden
files ignored, so a writer can fill ``.x.jsonl`` and rename it). Either way the bytes are streamed to a file,
capped at ``Settings.max_upload_bytes`` as an upload is, with no database transaction open meanwhile.

Errors: ``check`` raises ``InvalidRequest`` (param ``input_url``) for the API; ``fetch`` raises ``SourceError``,
whose message a run records as the schedule's ``last_error``.
"""

import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx

from broker.errors import BrokerError, InvalidRequest
from broker.settings import Settings
from broker.webhooks.ssrf import MAX_URL_LENGTH, AllowList, UnsafeTarget, check_url

FETCH_TIMEOUT = httpx.Timeout(30.0)  #: connect, and each read, of a download
MAX_FETCH_SECONDS = 300.0  #: a whole download; a slower one fails its run (it holds up its planner's tick)
COPY_CHUNK_BYTES = 1 << 20  #: bytes read and written at a time
DEFAULT_FILENAME = "input.jsonl"  #: the stored file's name when the URL's path has none
USER_AGENT = "inference-broker-schedules/0.1"  #: servers see who fetches
URL_SCHEMES = ("https", "http")  #: downloaded at each run
FOLDER_SCHEME = "file"  #: a folder read at each run


class SourceError(BrokerError):
    """An ``input_url`` that may not be used, or whose file could not be read at a run (the message says why)."""


@dataclass(frozen=True)
class InputSources:
    """What an operator lets schedules read from, and how much; ``transport`` is the seam for downloads."""

    allow: AllowList
    folders: tuple[Path, ...]
    max_bytes: int
    transport: httpx.BaseTransport | None = None

    @classmethod
    def from_settings(cls, settings: Settings, transport: httpx.BaseTransport | None = None) -> "InputSources":
        return cls(AllowList.parse(settings.schedule_url_allow_hosts), tuple(settings.schedule_folders),
                   settings.max_upload_bytes, transport)

    def check(self, url: str) -> str:
        """``url`` as given, if a schedule may read from it now; 400 (param ``input_url``) saying why not."""
        try:
            if _scheme(url) == FOLDER_SCHEME:
                self._folder(url)
            else:
                check_url(url, self.allow)
        except (SourceError, UnsafeTarget) as exc:
            hint = ""
            if isinstance(exc, UnsafeTarget) and "address" in str(exc):
                hint = " (an operator can allow a host with BROKER_SCHEDULE_URL_ALLOW_HOSTS)"
            raise InvalidRequest(f"input_url refused: {exc}{hint}.", param="input_url",
                                 code="invalid_input_url") from None
        return url

    def fetch(self, url: str, target: Path) -> str:
        """Write the run's input file to ``target`` and return its name; raises ``SourceError``."""
        if _scheme(url) == FOLDER_SCHEME:
            return self._copy_newest(url, target)
        return self._download(url, target)

    def _folder(self, url: str) -> Path:
        """The folder ``url`` names, symlinks resolved, if it lies under an allowed root."""
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
            raise SourceError("a folder URL is file:///absolute/path, with no host, query or fragment")
        folder = Path(unquote(parts.path))
        if not folder.is_absolute():
            raise SourceError("a folder URL needs an absolute path (file:///absolute/path)")
        folder = folder.resolve()
        if not self.folders:
            raise SourceError("no folder is allowed on this broker (an operator sets BROKER_SCHEDULE_FOLDERS)")
        if not self._allowed(folder):
            raise SourceError(f"{folder} is outside the folders schedules may read "
                              f"({', '.join(str(f) for f in self.folders)})")
        if not folder.is_dir():
            raise SourceError(f"{folder} is not a folder")
        return folder

    def _allowed(self, path: Path) -> bool:
        return any(path.is_relative_to(root.resolve()) for root in self.folders)

    def _copy_newest(self, url: str, target: Path) -> str:
        folder = self._folder(url)
        newest = _newest_jsonl(folder)
        if not self._allowed(newest.resolve()):  # a symlink in the folder that points out of it
            raise SourceError(f"{newest} links outside the folders schedules may read")
        try:
            if newest.stat().st_size > self.max_bytes:
                raise SourceError(self._too_big(newest.name))
            with newest.open("rb") as fh:
                self._write(iter(lambda: fh.read(COPY_CHUNK_BYTES), b""), target, newest.name)
        except OSError as exc:
            raise SourceError(f"could not read {newest}: {exc.strerror or exc}") from None
        return newest.name

    def _download(self, url: str, target: Path) -> str:
        shown = _shown(url)
        try:
            checked = check_url(url, self.allow)
        except UnsafeTarget as exc:
            raise SourceError(f"{shown} refused: {exc}") from None
        headers = {**checked.headers, "user-agent": USER_AGENT, "accept-encoding": "identity"}
        deadline = time.monotonic() + MAX_FETCH_SECONDS
        try:
            with httpx.Client(timeout=FETCH_TIMEOUT, follow_redirects=False, trust_env=False,
                              transport=self.transport) as client, \
                    client.stream("GET", checked.url, headers=headers, extensions=checked.extensions) as response:
                if response.status_code != 200:
                    raise SourceError(f"GET {shown} answered HTTP {response.status_code} {response.reason_phrase}")
                length = response.headers.get("content-length", "")
                if length.isdigit() and int(length) > self.max_bytes:
                    raise SourceError(self._too_big(shown))
                self._write(_until(deadline, shown, response.iter_bytes(COPY_CHUNK_BYTES)), target, shown)
        except httpx.HTTPError as exc:
            raise SourceError(f"GET {shown} failed: {type(exc).__name__} {exc}".rstrip()) from None
        return unquote(checked.url.path.rsplit("/", 1)[-1]) or DEFAULT_FILENAME

    def _write(self, chunks: Iterable[bytes], target: Path, name: str) -> None:
        """Stream ``chunks`` into ``target``, failing as soon as they pass the size cap."""
        size = 0
        with target.open("wb") as out:
            for chunk in chunks:
                size += len(chunk)
                if size > self.max_bytes:
                    raise SourceError(self._too_big(name))
                out.write(chunk)

    def _too_big(self, name: str) -> str:
        return f"{name} is larger than the maximum upload size of {self.max_bytes} bytes"


def _scheme(url: str) -> str:
    if len(url) > MAX_URL_LENGTH:
        raise SourceError(f"URL is longer than {MAX_URL_LENGTH} characters")
    scheme = urlsplit(url).scheme.lower()
    if scheme != FOLDER_SCHEME and scheme not in URL_SCHEMES:
        raise SourceError(f"scheme '{scheme}' is not supported; use https://, http:// or file:///a/folder")
    return scheme


def _newest_jsonl(folder: Path) -> Path:
    """The most recently modified visible ``*.jsonl`` regular file directly in ``folder`` (by name on a tie)."""
    found: list[tuple[int, str]] = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith(".") or not entry.name.endswith(".jsonl"):
                    continue
                try:
                    if entry.is_file():
                        found.append((entry.stat().st_mtime_ns, entry.name))
                except OSError:  # removed while listed
                    continue
    except OSError as exc:
        raise SourceError(f"could not list {folder}: {exc.strerror or exc}") from None
    if not found:
        raise SourceError(f"no *.jsonl file in {folder}")
    return folder / max(found)[1]


def _until(deadline: float, shown: str, chunks: Iterator[bytes]) -> Iterator[bytes]:
    for chunk in chunks:
        if time.monotonic() > deadline:
            raise SourceError(f"GET {shown} took longer than {MAX_FETCH_SECONDS:.0f} s")
        yield chunk


def _shown(url: str) -> str:
    """The URL without credentials or query (a signed URL's secret stays out of logs and ``last_error``)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}{parts.path}"
