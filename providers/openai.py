"""Adapter for any OpenAI-compatible upstream (OpenAI, Mistral, vLLM, Ollama, OpenRouter, LiteLLM)."""

import email.utils
import time
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from broker.catalogue import ProviderConfig
from broker.errors import RetryableUpstream, TerminalUpstream
from broker.pricing import Usage
from providers.http import int_header, send
from providers.transport import AsyncioTransport

DEFAULT_CONNECT_TIMEOUT = 10.0  #: seconds to open a connection to the upstream
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})
"""HTTP statuses worth trying again (529: Anthropic's "overloaded", which some OpenAI-compatible proxies send)."""


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    status: int
    text: str
    json: dict[str, Any]
    request_id: str | None
    #: the provider's own requests and tokens per minute, when it says (x-ratelimit-limit-*)
    header_limits: tuple[int | None, int | None] = (None, None)


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
    return httpx.AsyncClient(
        base_url=provider.base_url.rstrip("/") + "/",
        timeout=httpx.Timeout(provider.timeout_seconds, connect=DEFAULT_CONNECT_TIMEOUT),
        transport=AsyncioTransport(limits),
        headers=headers,
    )


def retry_after(headers: httpx.Headers) -> float | None:
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


def json_object_text(resp: httpx.Response) -> str:
    """The body as JSON object text; a non-JSON body (a proxy's HTML page) is wrapped in an error object."""
    try:
        if isinstance(orjson.loads(resp.content), dict):
            return resp.text
    except orjson.JSONDecodeError:
        pass
    wrapped = {"error": {"message": resp.text[:2000], "type": "upstream_error", "param": None, "code": None}}
    return orjson.dumps(wrapped).decode()


def raise_for_status(resp: httpx.Response) -> None:
    """Raise for an HTTP error answer: :class:`RetryableUpstream` (with ``delay`` from ``Retry-After``) for
    :data:`RETRYABLE_STATUSES`, else :class:`TerminalUpstream`; the body as JSON object text, ``x-request-id``."""
    if resp.status_code < 400:
        return
    message = f"Upstream answered HTTP {resp.status_code}"
    request_id = resp.headers.get("x-request-id")
    if resp.status_code in RETRYABLE_STATUSES:
        raise RetryableUpstream(message, code="upstream_http_error", status=resp.status_code,
                                body=json_object_text(resp), request_id=request_id, delay=retry_after(resp.headers))
    raise TerminalUpstream(message, code="upstream_http_error", status=resp.status_code,
                           body=json_object_text(resp), request_id=request_id)


class OpenAICompatible:
    """Posts one request body to an endpoint and sorts the answer into success, retryable or terminal."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def post(self, endpoint: str, body: bytes) -> UpstreamResponse:
        resp = await send(self.client, "POST", endpoint.removeprefix("/v1/"), raise_for_status,
                          content=body, headers={"content-type": "application/json"})
        try:
            parsed = orjson.loads(resp.content)
        except orjson.JSONDecodeError as exc:
            raise RetryableUpstream("Upstream answered with a body that is not JSON",
                                    code="upstream_invalid_response", status=resp.status_code) from exc
        limits = (int_header(resp.headers, "x-ratelimit-limit-requests"),
                  int_header(resp.headers, "x-ratelimit-limit-tokens"))
        return UpstreamResponse(resp.status_code, resp.text, parsed, resp.headers.get("x-request-id"), limits)
