"""A flood of slow uploads (issue #11, finding 3): each upload streams to the file store without holding a
database connection, so more slow clients than the pool has connections leave every other request working."""

import json
import socket
import threading
import time
from urllib.parse import urlsplit

from tests.harness import MakeBroker

SLOW_CLIENTS = 40  #: more than the database pool holds (SQLite's 5 + 10 here; PostgreSQL's 10 + 20)
TRICKLE_SECONDS = 0.5  #: each slow client sends one byte this often
CONTENT = b'{"custom_id": "slow"}\n' * 4
BOUNDARY = "slowboundary"


def _body() -> tuple[bytes, bytes]:
    """A multipart upload split where a slow client stalls: the head (sent at once) and the rest (sent late)."""
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n"
            f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"slow.jsonl\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    return head, CONTENT + f"\r\n--{BOUNDARY}--\r\n".encode()


def _open_slow_upload(host: str, port: int, key: str) -> socket.socket:
    head, rest = _body()
    sock = socket.create_connection((host, port), timeout=30)
    sock.sendall((f"POST /v1/files HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
                  f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
                  f"Content-Length: {len(head) + len(rest)}\r\n\r\n").encode() + head)
    return sock


def test_slow_uploads_hold_no_connection_and_other_requests_keep_working(make_broker: MakeBroker) -> None:
    broker = make_broker(workers=False, planner=False)
    host, port = urlsplit(broker.base_url).hostname or "", urlsplit(broker.base_url).port or 0
    sockets = [_open_slow_upload(host, port, broker.key) for _ in range(SLOW_CLIENTS)]
    _, rest = _body()
    sent = 0
    stop = threading.Event()
    trickled = threading.Event()

    def trickle() -> None:  # one byte from every slow client each TRICKLE_SECONDS, keeping each upload open
        nonlocal sent
        while not stop.is_set() and sent < len(rest) - 1:
            for sock in sockets:
                sock.sendall(rest[sent:sent + 1])
            sent += 1
            trickled.set()
            stop.wait(TRICKLE_SECONDS)

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        trickled.wait(10)
        with broker.http() as http:  # a 10 s client timeout: an exhausted pool answers after 30 s, or a 500
            for _ in range(5):
                assert http.get("/files").status_code == 200
                uploaded = http.post("/files", files={"file": ("quick.jsonl", CONTENT)}, data={"purpose": "batch"})
                assert uploaded.status_code == 200, uploaded.text
                time.sleep(TRICKLE_SECONDS)
        assert sent >= 2 and thread.is_alive(), "the slow uploads were not still in progress during the checks"
    finally:
        stop.set()
        thread.join()
    for sock in sockets:  # the slow clients finish: each upload completes as any other
        sock.sendall(rest[sent:])
        answer = sock.makefile("rb").read1(65536).split(b"\r\n\r\n", 1)
        sock.close()
        assert answer[0].startswith(b"HTTP/1.1 200"), answer[0]
        assert json.loads(answer[1])["bytes"] == len(CONTENT)
    with broker.http() as http:
        assert len(http.get("/files").json()["data"]) == SLOW_CLIENTS + 5
