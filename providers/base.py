"""What every provider adapter shares: the adapter protocols, the upstream answer, usage parsing, client
construction, status classification, and the native-batch shapes.

A provider kind is one module (``openai.py``, ``anthropic.py``, and their ``*_batch.py`` for the native batch API)
that implements :class:`Adapter` and :class:`NativeBatchApi` over an ``httpx.AsyncClient`` built by
:func:`make_client`; ``registry.py`` maps each catalogue ``kind`` to them. Failed calls raise
:class:`~broker.errors.RetryableUpstream` (timeouts, dropped connections, :data:`RETRYABLE_STATUSES`, with
``delay`` from ``Retry-After``) or :class:`~broker.errors.TerminalUpstream` (any other 4xx).
"""

import email.utils
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import orjson

from broker.catalogue import ProviderConfig
from broker.errors import RetryableUpstream, TerminalUpstream
from broker.pricing import Usage
from providers.http import Answer
from providers.transport import NoCookies, UpstreamClient
from schemas.errors import error_envelope

DEFAULT_CONNECT_TIMEOUT = 10.0  #: seconds to open a connection to the upstream
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})
"""HTTP statuses worth trying again (529: Anthropic's "overloaded", which some OpenAI-compatible proxies send)."""


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    status: int
    content: bytes  #: the answer's body, UTF-8 JSON (the gateway passes it on as it is)
    json: dict[str, Any]
    request_id: str | None
    #: the provider's own requests and tokens per minute, when it says (x-ratelimit-limit-*)
    header_limits: tuple[int | None, int | None] = (None, None)

    @property
    def text(self) -> str:
        return self.content.decode()


def usage_of(body: dict[str, Any]) -> Usage:
    """Tokens of a response body, whichever naming it uses (chat/completions/embeddings or responses)."""
    usage = body.get("usage") or {}
    details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details") or {}
    return Usage(int(usage.get("prompt_tokens", usage.get("input_tokens", 0)) or 0),
                 int(usage.get("completion_tokens", usage.get("output_tokens", 0)) or 0),
                 int(details.get("cached_tokens", 0) or 0))


def make_client(provider: ProviderConfig, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    """One pooled client per provider per process, sized to the provider's concurrency. It sends ``headers``
    if given, else ``Authorization: Bearer`` with the provider's key (if it has one)."""
    if headers is None:
        key = provider.api_key()
        headers = {"Authorization": f"Bearer {key}"} if key else None
    limits = httpx.Limits(max_connections=provider.max_concurrency,
                          max_keepalive_connections=provider.max_concurrency)
    return UpstreamClient(
        base_url=provider.base_url.rstrip("/") + "/",
        timeout=httpx.Timeout(provider.timeout_seconds, connect=DEFAULT_CONNECT_TIMEOUT),
        limits=limits,
        headers=headers,
        cookies=NoCookies(),
    )


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the upstream asked us to wait: ``retry-after-ms``, else ``retry-after`` (seconds or a date)."""
    if ms := headers.get("retry-after-ms"):
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def json_object_text(resp: Answer) -> str:
    """The body as JSON object text; a non-JSON body (a proxy's HTML page) is wrapped in an error object."""
    try:
        if isinstance(orjson.loads(resp.content), dict):
            return resp.text
    except orjson.JSONDecodeError:
        pass
    return orjson.dumps(error_envelope(resp.text[:2000], "upstream_error")).decode()


def raise_for_status(resp: Answer, *, request_id_header: str = "x-request-id",
                     error_text: Callable[[Answer], str] = json_object_text) -> None:
    """Raise for an HTTP error answer: :class:`RetryableUpstream` (with ``delay`` from ``Retry-After``) for
    :data:`RETRYABLE_STATUSES`, else :class:`TerminalUpstream`; the body as ``error_text`` gives it (OpenAI's
    JSON object text by default) and the request id from ``request_id_header``."""
    if resp.status_code < 400:
        return
    message = f"Upstream answered HTTP {resp.status_code}"
    body, request_id = error_text(resp), resp.headers.get(request_id_header)
    if resp.status_code in RETRYABLE_STATUSES:
        raise RetryableUpstream(message, code="upstream_http_error", status=resp.status_code, body=body,
                                request_id=request_id, delay=retry_after(resp.headers))
    raise TerminalUpstream(message, code="upstream_http_error", status=resp.status_code, body=body,
                           request_id=request_id)


class Adapter(Protocol):
    """A provider kind's real-time call: an OpenAI-format request in, an OpenAI-format answer out."""

    async def post(self, endpoint: str, body: bytes) -> UpstreamResponse: ...


DEFAULT_TRANSFER_TIMEOUT = httpx.Timeout(300.0, connect=DEFAULT_CONNECT_TIMEOUT)
"""Timeout of an input upload or a result download (files can hold up to 50,000 lines)."""
DEFAULT_COMPLETION_WINDOW = "24h"  #: the only completion window OpenAI accepts
BATCH_EXPIRED = "batch_expired"  #: error code of a line the provider did not run before its batch expired
TERMINAL_STATUSES = frozenset({"completed", "failed", "expired", "cancelled"})
"""Remote batch statuses that never change again."""

BatchLine = tuple[str, str, dict[str, Any]]
"""One request to submit: ``(custom_id, url, body)``, the url being the batch's endpoint."""


@dataclass(frozen=True, slots=True)
class RemoteProblem:
    """Why the provider refused a batch's input (one entry of the batch's ``errors.data``)."""

    code: str | None
    message: str | None
    line: int | None = None
    param: str | None = None


@dataclass(frozen=True, slots=True)
class RemoteBatch:
    """What the provider says about a batch at one poll."""

    id: str
    status: str
    """``validating``, ``in_progress``, ``finalizing``, ``completed``, ``failed``, ``expired``, ``cancelling``
    or ``cancelled``."""
    total: int = 0
    completed: int = 0
    failed: int = 0
    output_file_id: str | None = None
    error_file_id: str | None = None
    input_file_id: str | None = None
    problems: tuple[RemoteProblem, ...] = ()
    """Input validation errors (status ``failed``)."""
    input_tokens: int = 0
    output_tokens: int = 0
    created_at: int | None = None
    expires_at: int | None = None

    @property
    def terminal(self) -> bool:
        """True once the batch has ended (its files, if any, are final)."""
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RemoteBatch":
        """Read an OpenAI Batch object; absent or null fields take their defaults."""
        counts = data.get("request_counts") or {}
        usage = data.get("usage") or {}
        errors = (data.get("errors") or {}).get("data") or []
        problems = tuple(RemoteProblem(e.get("code"), e.get("message"), e.get("line"), e.get("param"))
                         for e in errors if isinstance(e, dict))
        return cls(
            id=str(data["id"]), status=str(data["status"]), total=int(counts.get("total") or 0),
            completed=int(counts.get("completed") or 0), failed=int(counts.get("failed") or 0),
            output_file_id=data.get("output_file_id"), error_file_id=data.get("error_file_id"),
            input_file_id=data.get("input_file_id"), problems=problems,
            input_tokens=int(usage.get("input_tokens") or 0), output_tokens=int(usage.get("output_tokens") or 0),
            created_at=data.get("created_at"), expires_at=data.get("expires_at"),
        )


@dataclass(frozen=True, slots=True)
class LineResult:
    """How one submitted line ended remotely.

    An HTTP answer sets ``status_code``, ``body`` (JSON object text) and ``request_id``; a line the provider
    did not run (e.g. ``batch_expired``) sets ``error_code`` and ``error_message`` instead.
    """

    custom_id: str
    status_code: int | None = None
    body: str | None = None
    request_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def succeeded(self) -> bool:
        """A 2xx answer: the line goes to the output file."""
        return self.error_code is None and self.status_code is not None and 200 <= self.status_code < 300

    @property
    def retryable(self) -> bool:
        """Worth running again elsewhere: a retryable HTTP status (429, 5xx, ...) or a line left unrun by
        the batch's expiry. Other failures (4xx) are final."""
        if self.error_code is not None:
            return self.error_code == BATCH_EXPIRED
        return self.status_code in RETRYABLE_STATUSES


class NativeBatchApi(Protocol):
    """What the broker needs of a provider's batch API (OpenAI's and Anthropic's adapters both provide it)."""

    async def submit(self, lines: Sequence[BatchLine], endpoint: str, completion_window: str = ...,
                     metadata: dict[str, str] | None = None) -> str: ...

    async def poll(self, remote_id: str) -> RemoteBatch: ...

    async def cancel(self, remote_id: str) -> RemoteBatch: ...

    async def results(self, remote: RemoteBatch) -> dict[str, LineResult]: ...
