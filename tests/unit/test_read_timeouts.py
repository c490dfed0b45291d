"""Read timeouts on our uvicorn servers (simulator/read_timeouts.py), with both of uvicorn's HTTP implementations:
a client that stalls in its request line or its body is disconnected within the bound, one that sends nothing
too, while a slow but steady upload is served in full."""

import socket
import time
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from simulator.serving import ThreadedServer

BOUND = 0.5  #: the header and body timeouts of the server under test, in seconds
CLOSED_WITHIN = 5.0  #: a stalled connection must be closed by then (ten times the bound: a loaded machine)


async def _echo(request: Request) -> Response:
    return Response(await request.body())


@pytest.fixture(params=["httptools", "h11"])
def server(request: pytest.FixtureRequest) -> Iterator[ThreadedServer]:
    app = Starlette(routes=[Route("/echo", _echo, methods=["POST"])])
    with ThreadedServer(app, name="read-timeouts", header_timeout=BOUND, body_timeout=BOUND,
                        http=request.param) as running:
        yield running


def _closed_after(sock: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    start, received = time.monotonic(), b""
    sock.settimeout(CLOSED_WITHIN)
    while chunk := sock.recv(65536):
        received += chunk
    return received, time.monotonic() - start


def _connect(server: ThreadedServer) -> socket.socket:
    return socket.create_connection((server.host, server.port), timeout=CLOSED_WITHIN)


def test_a_stalled_request_line_is_closed_within_the_bound(server: ThreadedServer) -> None:
    with _connect(server) as sock:
        sock.sendall(b"POST /echo HT")
        received, took = _closed_after(sock)  # raises socket.timeout if the server holds on
    assert received == b"" and took < CLOSED_WITHIN


def test_a_connection_that_sends_nothing_is_closed(server: ThreadedServer) -> None:
    with _connect(server) as sock:
        received, _ = _closed_after(sock)
    assert received == b""


def test_a_trickle_of_headers_does_not_extend_the_bound(server: ThreadedServer) -> None:
    with _connect(server) as sock:
        sock.settimeout(CLOSED_WITHIN)
        start = time.monotonic()
        with pytest.raises(OSError):  # the server closes while we are still sending headers
            for i in range(50):
                sock.sendall(b"POST /echo HTTP/1.1\r\n" if i == 0 else f"x-slow-{i}: 1\r\n".encode())
                time.sleep(BOUND / 4)
            assert sock.recv(1) == b""
        assert time.monotonic() - start < CLOSED_WITHIN


def test_a_stalled_body_is_closed_within_the_bound(server: ThreadedServer) -> None:
    with _connect(server) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n" + b"x" * 10)
        received, took = _closed_after(sock)
    assert b"200" not in received and took < CLOSED_WITHIN


def test_a_slow_but_steady_body_is_served_in_full(server: ThreadedServer) -> None:
    pieces = [f"{i:04d}".encode() for i in range(12)]  # sent over 3 s: six times either bound
    with _connect(server) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: 48\r\n\r\n")
        for piece in pieces:
            time.sleep(BOUND / 2)
            sock.sendall(piece)
        received, _ = _closed_after(sock)
    assert received.startswith(b"HTTP/1.1 200") and received.endswith(b"".join(pieces))
