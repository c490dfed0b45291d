"""An asyncio-native network backend for httpcore, plugged into httpx as a transport.

Why: httpcore's default (anyio) backend answers the pool's per-request "is this idle connection still open?"
check by building anyio's socket attribute table, which calls ``getpeername()`` every time. With dozens of
pooled connections that check dominated a worker's CPU; here it is a single zero-timeout ``poll``.
"""

import asyncio
import select
import ssl
import typing
from collections.abc import Iterable

import httpcore
import httpx

SocketOption = tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]


def _readable(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


async def _timed(aw: typing.Awaitable[typing.Any], timeout: float | None,
                 timeout_exc: type[Exception]) -> typing.Any:
    try:
        return await asyncio.wait_for(aw, timeout)
    except TimeoutError as exc:
        raise timeout_exc(str(exc) or "timed out") from exc


class AsyncioStream(httpcore.AsyncNetworkStream):
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            data: bytes = await _timed(self._reader.read(max_bytes), timeout, httpcore.ReadTimeout)
            return data
        except OSError as exc:
            raise httpcore.ReadError(str(exc)) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            self._writer.write(buffer)
            await _timed(self._writer.drain(), timeout, httpcore.WriteTimeout)
        except OSError as exc:
            raise httpcore.WriteError(str(exc)) from exc

    async def aclose(self) -> None:
        self._writer.close()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        try:
            await _timed(self._writer.start_tls(ssl_context, server_hostname=server_hostname), timeout,
                         httpcore.ConnectTimeout)
        except (OSError, ssl.SSLError) as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        return self

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "is_readable":
            sock = self._writer.get_extra_info("socket")
            return sock is None or sock.fileno() < 0 or _readable(sock.fileno())
        mapping = {"ssl_object": "ssl_object", "client_addr": "sockname", "server_addr": "peername",
                   "socket": "socket"}
        return self._writer.get_extra_info(mapping[info]) if info in mapping else None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[SocketOption] | None = None) -> httpcore.AsyncNetworkStream:
        local = (local_address, 0) if local_address else None
        try:
            reader, writer = await _timed(asyncio.open_connection(host, port, local_addr=local), timeout,
                                          httpcore.ConnectTimeout)
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        sock = writer.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return AsyncioStream(reader, writer)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[SocketOption] | None = None
                                  ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not supported by this backend")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class AsyncioTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (request mapping, error mapping) over a pool that uses :class:`AsyncioBackend`."""

    def __init__(self, limits: httpx.Limits) -> None:
        super().__init__(limits=limits)
        self._pool = httpcore.AsyncConnectionPool(  # replaces the anyio-backed pool httpx built
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=AsyncioBackend(),
        )
