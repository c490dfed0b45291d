"""HTTP plumbing shared by the provider adapters (openai*.py, anthropic*.py).

:func:`classified` turns httpx's network failures into :class:`~broker.errors.RetryableUpstream`;
:func:`send` makes one request under it and applies the adapter's status check (a function that raises for an
error answer, each adapter reading its own request id and error body); :func:`post_json` does the same for the
real-time call of a batch line, past httpx's client machinery when the client allows it
(:class:`~providers.transport.UpstreamClient`); :func:`json_body` reads an answer as a JSON object, and
:func:`request_json` does both. :func:`stream_lines` streams a GET's non-blank lines through a
parser, and :func:`int_header` reads a numeric header. Which statuses are retryable is the adapters' business.
"""

from collections.abc import AsyncIterator, Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, Protocol, TypeVar

import httpx
import orjson

from broker.errors import RetryableUpstream
from providers.answers import invalid_answer
from providers.transport import UpstreamClient


class Answer(Protocol):
    """What the adapters read of an upstream's answer: an ``httpx.Response`` or a
    :class:`providers.transport.Answer`."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def content(self) -> bytes: ...

    @property
    def text(self) -> str: ...


StatusCheck = Callable[[Answer], None]
"""Raises :class:`~broker.errors.UpstreamError` for an error answer (status >= 400), returns otherwise."""
T = TypeVar("T")
JSON_HEADERS = {"content-type": "application/json"}  #: of a request whose body is JSON


@contextmanager
def classified() -> Iterator[None]:
    """Turn httpx's network failures into :class:`RetryableUpstream`."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise RetryableUpstream(f"Upstream timed out: {exc!r}", code="upstream_timeout") from exc
    except httpx.TransportError as exc:
        raise RetryableUpstream(f"Upstream connection failed: {exc!r}", code="upstream_connection_error") from exc


def int_header(headers: Mapping[str, str], name: str) -> int | None:
    """A header's value as a whole number; None when it is absent or not one."""
    value = headers.get(name)
    return int(value) if value and value.isdigit() else None


@lru_cache(maxsize=1024)
def _absolute(base_url: httpx.URL, path: str) -> httpx.URL:
    """``path`` under ``base_url`` as httpx's client joins them; remembered, since httpx parses both URLs again on
    every request given a relative one (a sixth of httpx's own CPU per call)."""
    return base_url.copy_with(raw_path=base_url.raw_path + httpx.URL(path).raw_path.lstrip(b"/"))


async def send(client: httpx.AsyncClient, method: str, path: str, check: StatusCheck,
               **kwargs: Any) -> httpx.Response:
    """``client.request(method, path, **kwargs)`` with network failures classified and ``check`` applied."""
    with classified():
        resp = await client.request(method, _absolute(client.base_url, path), **kwargs)
    check(resp)
    return resp


async def post_json(client: httpx.AsyncClient, path: str, body: bytes, check: StatusCheck) -> Answer:
    """POST the JSON ``body`` to ``path`` and read the whole answer, network failures classified and ``check``
    applied; straight to the wire when ``client`` is an :class:`UpstreamClient` (what ``make_client`` builds)."""
    url = _absolute(client.base_url, path)
    with classified():
        resp: Answer = await (client.post_bytes(url, body) if isinstance(client, UpstreamClient) else
                              client.request("POST", url, content=body, headers=JSON_HEADERS))
    check(resp)
    return resp


def json_body(resp: Answer, *, keys: Collection[str] = (), what: str = "a JSON object") -> dict[str, Any]:
    """The answer's body as a JSON object holding ``keys``; else :class:`RetryableUpstream`
    ``upstream_invalid_response`` ("... not ``what``", quoting the answer's first bytes)."""
    try:
        parsed = orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict) or not all(key in parsed for key in keys):
        raise invalid_answer(f"not {what}", resp.content, resp.status_code)
    return parsed


async def request_json(client: httpx.AsyncClient, method: str, path: str, check: StatusCheck, *,
                       keys: Collection[str] = (), what: str = "a JSON object", **kwargs: Any) -> dict[str, Any]:
    """:func:`send`, then :func:`json_body` of the answer."""
    return json_body(await send(client, method, path, check, **kwargs), keys=keys, what=what)


async def stream_lines(client: httpx.AsyncClient, path: str, check: StatusCheck, parse: Callable[[str], T], *,
                       timeout: httpx.Timeout) -> AsyncIterator[T]:
    """``parse`` of each non-blank line of a streamed GET, network failures classified; ``check`` sees an error
    answer with its body read. Lines are parsed inside the stream, so a bad line closes it at once."""
    with classified():
        async with client.stream("GET", path, timeout=timeout) as resp:
            if resp.status_code >= 400:
                await resp.aread()
                check(resp)
            async for text in resp.aiter_lines():
                if text.strip():
                    yield parse(text)
