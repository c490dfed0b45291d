"""Read timeouts for uvicorn's HTTP protocols: a slow or stalled client cannot hold a connection open for long.

uvicorn bounds only the idle time between requests (``timeout_keep_alive``): a client that opens a connection and
sends nothing, or half a request line, or stops in the middle of a body, holds it open for ever. These protocol
classes (uvicorn's own, with a timer) close a connection whose request head is not complete ``header_timeout``
seconds after it began, or whose body has not advanced for ``body_timeout`` seconds. Pass one as
``uvicorn.Config(http=...)``: :func:`guarded_protocol` builds it.
"""

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from simulator.one_write import OneWriteProtocol

DEFAULT_HEADER_TIMEOUT = 10.0  #: seconds a request line and headers may take to arrive, from their first byte
DEFAULT_BODY_TIMEOUT = 30.0  #: seconds a request body may go without a byte arriving


class _ReadTimeouts:
    """Mixed in before a uvicorn HTTP protocol class; relies on its ``cycle``, ``transport`` and ``flow``."""

    header_timeout = DEFAULT_HEADER_TIMEOUT
    body_timeout = DEFAULT_BODY_TIMEOUT
    cycle: Any
    transport: asyncio.Transport
    flow: Any

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._read_timer: asyncio.TimerHandle | None = None
        self._reading_head = False
        self._expect_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)  # type: ignore[misc]
        cycle = self.cycle
        if cycle is None or cycle.response_complete:  # between requests, or inside the next one's head
            if not self._reading_head:
                self._expect_head()
        elif cycle.more_body:  # a body on its way: the clock restarts with every piece
            self._arm(self.body_timeout)
            self._reading_head = False
        else:  # the request is in; the application has it
            self._cancel()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)  # type: ignore[misc]

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        self._cancel()  # uvicorn's keep-alive timeout watches the idle connection now

    def _expect_head(self) -> None:
        self._arm(self.header_timeout)
        self._reading_head = True

    def _arm(self, seconds: float) -> None:
        self._cancel()
        self._read_timer = asyncio.get_running_loop().call_later(seconds, self._timed_out, seconds)

    def _cancel(self) -> None:
        if getattr(self, "_read_timer", None) is not None:
            self._read_timer.cancel()  # type: ignore[union-attr]
            self._read_timer = None
        self._reading_head = False

    def _timed_out(self, seconds: float) -> None:
        self._read_timer = None
        if self.flow is not None and self.flow.read_paused:  # we stopped reading (the app is behind), not them
            self._arm(seconds)
            return
        if not self.transport.is_closing():
            self.transport.close()


def guarded_protocol(http: str, header_timeout: float = DEFAULT_HEADER_TIMEOUT,
                     body_timeout: float = DEFAULT_BODY_TIMEOUT) -> type:
    """uvicorn's ``http`` protocol class (``"h11"`` or ``"httptools"``) with read timeouts, each response's head
    and body written together (simulator/one_write.py)."""
    base: type
    if http == "httptools":
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        base = HttpToolsProtocol
    else:
        base = H11Protocol
    return type(f"Guarded{base.__name__}", (_ReadTimeouts, OneWriteProtocol, base),
                {"header_timeout": header_timeout, "body_timeout": body_timeout})
