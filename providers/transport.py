"""httpx's API over aiohttp's connection pool: the transport of every upstream client (:func:`make_client`), and
the shortcut past httpx's client that every batch line's call takes (:class:`UpstreamClient`).

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

The shortcut: with the wire moved, httpx's client layer (Request and Response objects, header merging, auth, hooks,
cookies, redirects) cost more CPU per call than aiohttp's whole request, so the one call made per batch line
(:func:`providers.http.post_json`) skips it: :meth:`UpstreamClient.post_bytes` posts straight to aiohttp and
returns an :class:`Answer`, raising the same httpx errors. httpx's API stays the user-facing choice, and what the
rest of the providers use (native batches' uploads and downloads, streamed interactive calls).
"""

import http.cookiejar
import typing
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import aiohttp
import httpx
import yarl
from multidict import CIMultiDictProxy

ACCEPT_ENCODING = "gzip, deflate"  #: what :meth:`UpstreamClient.post_bytes` accepts (aiohttp decodes it with zlib)
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

    def _timeout(self, given: dict[str, float | None]) -> aiohttp.ClientTimeout:
        key = (given.get("connect"), given.get("read"), given.get("pool"))
        if key not in self._timeouts:
            connect, read, pool = key
            self._timeouts[key] = aiohttp.ClientTimeout(
                total=None, sock_connect=connect, sock_read=read,
                connect=None if pool is None or connect is None else pool + connect)
        return self._timeouts[key]

    def _target(self, key: str) -> tuple[yarl.URL, yarl.URL | None]:
        if (found := self._targets.get(key)) is None:
            url = yarl.URL(key, encoded=True)
            found = self._targets[key] = (url, _env_proxy(url))
            if len(self._targets) > MAX_CACHED_URLS:  # URLs with ids in them (batches/{id}): keep the newest
                del self._targets[next(iter(self._targets))]
        return found

    async def _request(self, method: str, url: str, headers: list[tuple[str, str]], data: typing.Any,
                       timeout: dict[str, float | None], decompress: bool) -> aiohttp.ClientResponse:
        """aiohttp's answer (its head read, its body not yet) to a request sent as given, through the proxy the
        environment names; raises the httpx error of a failure."""
        if self._session is None:
            self._session = self._open()
        target, proxy = self._target(url)
        with _as_httpx_errors():
            return await self._session.request(
                method, target, headers=headers, data=data, allow_redirects=False, compress=None,
                timeout=self._timeout(timeout), proxy=proxy, auto_decompress=decompress,
                proxy_auth=aiohttp.BasicAuth.from_url(proxy) if proxy is not None and proxy.user else None)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        data: typing.Any
        headers = [(key.decode("latin-1"), value.decode("latin-1")) for key, value in request.headers.raw]
        try:
            data = request.content or None
        except httpx.RequestNotRead:  # a streamed upload (multipart): aiohttp sends it as it comes
            data = request.stream
            headers = [(k, v) for k, v in headers if k.lower() != "transfer-encoding"]
        resp = await self._request(request.method, str(request.url), headers, data,
                                   request.extensions.get("timeout", {}), decompress=False)
        return httpx.Response(resp.status, headers=resp.raw_headers, stream=_Body(resp),
                              extensions={"http_version": b"HTTP/1.1",
                                          "reason_phrase": (resp.reason or "").encode("latin-1")})

    async def post(self, url: str, content: bytes, headers: list[tuple[str, str]],
                   timeout: dict[str, float | None]) -> "Answer":
        """POST ``content`` and read the whole answer, decompressed by aiohttp (``headers`` offer only what it
        decodes: :data:`ACCEPT_ENCODING`); no httpx Request or Response is made."""
        resp = await self._request("POST", url, headers, content, timeout, decompress=True)
        with _as_httpx_errors():
            try:
                body = await resp.read()
            except BaseException:
                resp.close()  # the connection, with an answer half read, is of no further use
                raise
        return Answer(resp.status, resp.headers, body, resp.charset)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


@dataclass(frozen=True, slots=True)
class Answer:
    """A whole upstream answer as :meth:`UpstreamClient.post_bytes` gives it: what the adapters read of an
    ``httpx.Response`` (``status_code``, case-insensitive ``headers``, ``content``, ``text``) and nothing more."""

    status_code: int
    headers: "CIMultiDictProxy[str]"
    content: bytes
    charset: str | None = None  #: the ``content-type``'s charset, if it names one

    @property
    def text(self) -> str:
        """The body decoded as httpx does: by the charset it names, else UTF-8, bad bytes replaced."""
        try:
            return self.content.decode(self.charset or "utf-8", errors="replace")
        except LookupError:  # a charset Python does not know
            return self.content.decode("utf-8", errors="replace")


class UpstreamClient(httpx.AsyncClient):
    """httpx's client over :class:`AiohttpTransport`, with a shortcut for the one call made per batch line.

    :meth:`post_bytes` hands a JSON body to the transport directly: building httpx's Request and Response,
    merging headers, running auth, event hooks, cookies and redirects cost more CPU per call than aiohttp's whole
    request. The shortcut sends what httpx would send (this client's headers, ``Accept-Encoding`` aside, and its
    timeouts); clients made by :func:`~providers.base.make_client` have no auth, hooks, cookies or redirects.
    Everything else (uploads, downloads, streams) goes through httpx's API as before.
    """

    def __init__(self, *, limits: httpx.Limits, **kwargs: typing.Any) -> None:
        self._wire = AiohttpTransport(limits)
        super().__init__(transport=self._wire, **kwargs)
        kept = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self.headers.raw]
        self._post_headers = [*((k, v) for k, v in kept if k.lower() != "accept-encoding"),
                              ("Accept-Encoding", ACCEPT_ENCODING), ("Content-Type", "application/json")]
        self._post_timeout = self.timeout.as_dict()

    async def post_bytes(self, url: httpx.URL, content: bytes) -> Answer:
        """POST the JSON ``content`` to ``url`` (absolute) and read the whole answer; a network failure raises
        the httpx error it is, as :meth:`post` would."""
        return await self._wire.post(str(url), content, self._post_headers, self._post_timeout)
