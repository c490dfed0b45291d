"""Our uvicorn servers write a response's head and body together (simulator/one_write.py): the client's socket
receives each answer as one TCP segment, not two, with both of uvicorn's HTTP implementations; a streamed answer
still arrives in full."""

import socket
import struct
import sys
from collections.abc import AsyncIterator, Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from simulator.serving import ThreadedServer

BODY = b'{"answer": "' + b"x" * 200 + b'"}'
CALLS = 10  #: requests on one connection
DATA_SEGS_IN = 152  #: offset of ``tcpi_data_segs_in`` (Linux >= 4.6) in ``struct tcp_info``

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="counts segments with Linux's TCP_INFO")


async def _answer(request: Request) -> Response:
    return Response(BODY, media_type="application/json")


async def _events(request: Request) -> StreamingResponse:
    async def events() -> AsyncIterator[bytes]:
        for i in range(3):
            yield b"data: %d\n\n" % i

    return StreamingResponse(events(), media_type="text/event-stream")


@pytest.fixture(params=["httptools", "h11"])
def server(request: pytest.FixtureRequest) -> Iterator[ThreadedServer]:
    app = Starlette(routes=[Route("/answer", _answer), Route("/events", _events)])
    with ThreadedServer(app, name="one-write", http=request.param) as running:
        yield running


def _get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode()


def _data_segments_in(sock: socket.socket) -> int:
    """Segments carrying data that the socket has received so far."""
    return int(struct.unpack_from("I", sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256), DATA_SEGS_IN)[0])


def _read_until(sock: socket.socket, end: bytes) -> bytes:
    received = b""
    while not received.endswith(end):
        received += sock.recv(65536)
    return received


def test_each_answer_arrives_in_one_segment(server: ThreadedServer) -> None:
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        for _ in range(CALLS):
            before = _data_segments_in(sock)
            sock.sendall(_get("/answer"))
            answer = _read_until(sock, BODY)
            assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
            assert _data_segments_in(sock) - before == 1  # head and body apart would be 2


def test_a_stream_arrives_in_full(server: ThreadedServer) -> None:
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(_get("/events"))
        received = _read_until(sock, b"0\r\n\r\n")
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert all(b"data: %d\n\n" % i in received for i in range(3))
