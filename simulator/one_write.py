"""A response head and its body in one write: uvicorn writes them to the socket apart.

uvicorn's HTTP protocols send a response's status line and headers with one ``transport.write`` and its body with
another: two ``send`` system calls and two TCP segments, so the client wakes up twice for an answer that fits in
one (a gateway call pays that twice: from the upstream, and to its client). :class:`OneWrite` holds the head until
the body's first write, which takes both in one ``writelines``; a head with no body to follow (a stream whose
first event is not ready yet, ``100 Continue``) leaves at the end of the event loop's current pass.
"""

import asyncio
from typing import Any

HEAD = b"HTTP/"  #: how a response head (uvicorn's status line) starts


class OneWrite:
    """A transport that holds a response head back until the next write (or the loop's next pass); everything
    else is the wrapped transport's."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._head: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._head is not None:
            head, self._head = self._head, None
            self._transport.writelines((head, data))
        elif data[:len(HEAD)] == HEAD:
            self._head = bytes(data)
            asyncio.get_running_loop().call_soon(self._flush)
        else:
            self._transport.write(data)

    def _flush(self) -> None:
        if self._head is not None:
            head, self._head = self._head, None
            if not self._transport.is_closing():
                self._transport.write(head)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class OneWriteProtocol:
    """Mixed in before a uvicorn HTTP protocol class: its responses leave through :class:`OneWrite`."""

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(OneWrite(transport))  # type: ignore[misc]
