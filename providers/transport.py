"""httpx's API over aiohttp's connection pool: the transport of every upstream client (:func:`make_client`).

Why: httpcore's pool (httpx's default transport) spends about 2-3 ms of CPU per request with dozens of pooled
connections, ten to twenty times what aiohttp spends on the same request; that was nearly all of the broker's CPU
per line. The adapters keep httpx's API (requests, responses, errors, ``MockTransport`` in tests); only the wire
moves. ``httpx-aiohttp`` (the openai SDK's ``DefaultAioHttpClient``) does the same, but maps a dropped connection
to ``ConnectTimeout`` and lets a malformed answer escape as an aiohttp error, which would turn a retryable
upstream fault into our own; this module maps every aiohttp failure to the httpx error it is.

What carries over from httpx's settings: connect, read and pool timeouts (aiohttp has no write timeout: a write
that stalls ends at the read timeout), the connection limit and keep-alive expiry, certificate checks with
``SSL_CERT_FILE``/``SSL_CERT_DIR``, and ``HTTP(S)_PROXY``/``NO_PROXY`` from the environment. HTTP/1.1 only, as
before (httpx's HTTP/2 needs ``h2``, which the broker never installed). No cookies are kept.
"""

import http.cookiejar
import typing
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import aiohttp
import httpx
import yarl

MAX_CACHED_URLS = 512  #: URLs whose aiohttp form and proxy a transport remembers
_ERRORS: tuple[tuple[type[BaseException], type[httpx.TransportError]], ...] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),  # opening a connection, or waiting for a pooled one
    (aiohttp.ClientProxyConnectionError, httpx.ProxyError),
    (aiohttp.ClientHttpProxyError, httpx.ProxyError),
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (TimeoutError, httpx.ReadTimeout),  # aiohttp's SocketTimeoutError: nothing read within the timeout
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),  # not an HTTP answer
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
    (aiohttp.ClientError, httpx.ReadError),  # reset, truncated body, any other socket error
)
"""aiohttp's failures and the httpx error each one is; the first that matches wins."""


@contextmanager
def _as_httpx_errors() -> Iterator[None]:
    try:
        yield
    except (TimeoutError, aiohttp.ClientError) as exc:
        mapped = next(to for from_, to in _ERRORS if isinstance(exc, from_))
        raise mapped(str(exc) or type(exc).__name__) from exc


class _Body(httpx.AsyncByteStream):
    """An aiohttp answer's body as httpx reads it; closing it hands the connection back (or drops it when
    the body was not read to its end)."""

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors():
            async for chunk in self._resp.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        if self._resp.content.at_eof():
            self._resp.release()
        else:
            self._resp.close()


class NoCookies(http.cookiejar.CookieJar):
    """A client's cookie jar that keeps nothing: upstream APIs are stateless, and parsing every answer's cookies
    was a tenth of httpx's own CPU per call."""

    def extract_cookies(self, response: typing.Any, request: typing.Any) -> None:
        pass


def _env_proxy(url: yarl.URL) -> yarl.URL | None:
    """The proxy ``HTTP(S)_PROXY``/``NO_PROXY`` give for ``url``'s origin, if any."""
    if not url.host or urllib.request.proxy_bypass(url.host):
        return None
    proxy = urllib.request.getproxies().get(url.scheme)
    return yarl.URL(proxy) if proxy else None


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp session (made on first use, on the running loop) holding up to ``limits.max_connections``."""

    def __init__(self, limits: httpx.Limits) -> None:
        self._limits = limits
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[float | None, ...], aiohttp.ClientTimeout] = {}
        #: per URL: the URL as aiohttp takes it and the proxy it goes through (aiohttp's own ``trust_env`` would
        #: look the proxy and ``.netrc`` up in a thread on every request)
        self._targets: dict[str, tuple[yarl.URL, yarl.URL | None]] = {}

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=self._limits.max_connections or 0,
                                         keepalive_timeout=self._limits.keepalive_expiry or 0,
                                         ssl=httpx.create_ssl_context())
        # httpx already set the request's headers and decodes the answer; aiohttp adds nothing and keeps no cookies
        return aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                     cookie_jar=aiohttp.DummyCookieJar(),
                                     skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"))

    def _timeout(self, request: httpx.Request) -> aiohttp.ClientTimeout:
        given = request.extensions.get("timeout", {})
        key = (given.get("connect"), given.get("read"), given.get("pool"))
        if key not in self._timeouts:
            connect, read, pool = key
            self._timeouts[key] = aiohttp.ClientTimeout(
                total=None, sock_connect=connect, sock_read=read,
                connect=None if pool is None or connect is None else pool + connect)
        return self._timeouts[key]

    def _target(self, request: httpx.Request) -> tuple[yarl.URL, yarl.URL | None]:
        key = str(request.url)
        if (found := self._targets.get(key)) is None:
            url = yarl.URL(key, encoded=True)
            found = self._targets[key] = (url, _env_proxy(url))
            if len(self._targets) > MAX_CACHED_URLS:  # URLs with ids in them (batches/{id}): keep the newest
                del self._targets[next(iter(self._targets))]
        return found

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._session is None:
            self._session = self._open()
        url, proxy = self._target(request)
        data: typing.Any
        headers = [(key.decode("latin-1"), value.decode("latin-1")) for key, value in request.headers.raw]
        try:
            data = request.content or None
        except httpx.RequestNotRead:  # a streamed upload (multipart): aiohttp sends it as it comes
            data = request.stream
            headers = [(k, v) for k, v in headers if k.lower() != "transfer-encoding"]
        with _as_httpx_errors():
            resp = await self._session.request(
                request.method, url, headers=headers, data=data, allow_redirects=False, compress=None,
                timeout=self._timeout(request), proxy=proxy,
                proxy_auth=aiohttp.BasicAuth.from_url(proxy) if proxy is not None and proxy.user else None)
        return httpx.Response(resp.status, headers=resp.raw_headers, stream=_Body(resp),
                              extensions={"http_version": b"HTTP/1.1",
                                          "reason_phrase": (resp.reason or "").encode("latin-1")})

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
