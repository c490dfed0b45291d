"""The upstream transport (providers/transport.py) over real sockets: every wire failure is a retryable upstream
error of the right kind, never an aiohttp error leaking out, and ``HTTP_PROXY``/``NO_PROXY`` are obeyed, both
through httpx's API (``send``) and on the batch line's shortcut past it (``post_json``)."""

import asyncio
import gzip
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from broker.catalogue import ProviderConfig
from broker.errors import RetryableUpstream
from providers.base import make_client, raise_for_status
from providers.http import JSON_HEADERS, post_json, send

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n"
      b'{"ok":true}')


@asynccontextmanager
async def server(handle: Handler) -> AsyncIterator[str]:
    """A raw TCP server on loopback running ``handle`` per connection; yields its origin."""
    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}"
    finally:
        srv.close()


async def read_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


def provider(base_url: str, timeout: float = 5.0) -> ProviderConfig:
    return ProviderConfig(name="p", base_url=base_url, timeout_seconds=timeout, api_key_env="TRANSPORT_TEST_KEY")


WAYS = ["send", "post_json"]  #: httpx's API, and the shortcut every batch line's call takes


async def call(base_url: str, timeout: float = 5.0, way: str = "send") -> bytes:
    async with make_client(provider(base_url, timeout)) as client:
        if way == "post_json":
            return (await post_json(client, "chat/completions", b"{}", raise_for_status)).content
        resp = await send(client, "POST", "chat/completions", raise_for_status, content=b"{}", headers=JSON_HEADERS)
        return resp.content


@pytest.mark.parametrize("reply", [b"", b"this is not HTTP\r\n\r\n", b"HTTP/1.1 200 OK\r\ncontent-length: 99\r\n\r\n{"],
                         ids=["closed without an answer", "not HTTP", "body cut short"])
@pytest.mark.parametrize("way", WAYS)
def test_a_broken_answer_is_a_retryable_connection_error(reply: bytes, way: str) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(reply)
        await writer.drain()
        writer.close()

    async def scenario() -> None:
        async with server(handle) as origin:
            with pytest.raises(RetryableUpstream) as failed:
                await call(origin + "/v1", way=way)
            assert failed.value.code == "upstream_connection_error"

    asyncio.run(scenario())


@pytest.mark.parametrize("way", WAYS)
def test_an_answer_slower_than_the_read_timeout_is_a_retryable_timeout(way: str) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        await asyncio.sleep(2)
        writer.close()

    async def scenario() -> None:
        async with server(handle) as origin:
            with pytest.raises(RetryableUpstream) as failed:
                await call(origin + "/v1", timeout=0.2, way=way)
            assert failed.value.code == "upstream_timeout"

    asyncio.run(scenario())


@pytest.mark.parametrize("way", WAYS)
def test_an_unreachable_upstream_is_a_retryable_connection_error(way: str) -> None:
    async def scenario() -> None:
        async with server(lambda r, w: asyncio.sleep(0)) as origin:
            pass  # closed: nothing listens on its port any more
        with pytest.raises(RetryableUpstream) as failed:
            await call(origin + "/v1", way=way)
        assert failed.value.code == "upstream_connection_error"

    asyncio.run(scenario())


@pytest.mark.parametrize("way", WAYS)
def test_calls_go_through_the_proxy_the_environment_names_unless_no_proxy_exempts_the_host(
        monkeypatch: pytest.MonkeyPatch, way: str) -> None:
    seen: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append((await read_head(reader)).split(b"\r\n")[0])
        writer.write(OK)
        await writer.drain()
        writer.close()

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(OK)
        await writer.drain()
        writer.close()

    async def scenario() -> None:
        async with server(proxy) as proxy_origin, server(upstream) as origin:
            monkeypatch.setenv("HTTP_PROXY", proxy_origin)
            monkeypatch.setenv("NO_PROXY", "")
            far = origin.replace("127.0.0.1", "localhost")
            assert await call(far + "/v1", way=way) == b'{"ok":true}'
            assert seen == [f"POST {far}/v1/chat/completions HTTP/1.1".encode()]
            monkeypatch.setenv("NO_PROXY", "localhost")
            assert await call(far + "/v1", way=way) == b'{"ok":true}'
            assert len(seen) == 1, "NO_PROXY: the call went straight to the upstream"

    asyncio.run(scenario())


@pytest.mark.parametrize("way", WAYS)
def test_a_call_sends_the_clients_headers_and_reads_a_compressed_answer(monkeypatch: pytest.MonkeyPatch,
                                                                        way: str) -> None:
    monkeypatch.setenv("TRANSPORT_TEST_KEY", "sk-transport-test")
    heads: list[bytes] = []
    body = gzip.compress(b'{"ok":true}')

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append((await read_head(reader)).lower())
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: gzip\r\n"
                     b"content-length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    async def scenario() -> None:
        async with server(upstream) as origin:
            assert await call(origin + "/v1", way=way) == b'{"ok":true}'

    asyncio.run(scenario())
    head = heads[0]
    assert head.startswith(b"post /v1/chat/completions http/1.1")
    for sent in (b"authorization: bearer sk-transport-test", b"content-type: application/json",
                 b"user-agent: python-httpx/", b"accept-encoding: gzip"):
        assert sent in head, (sent, head)
