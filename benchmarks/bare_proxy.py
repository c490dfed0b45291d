"""The least a Python gateway can do: benchmarks.gateway's ceiling for any proxy written in Python on this machine.

uvicorn served as the broker's API is (``simulator.serving.fast_config``: uvloop, httptools, a response's head and
body in one write) with a bare ASGI app that forwards each POST's body to the upstream through one pooled
``aiohttp.ClientSession`` and writes the answer back: no keys, no rules, no limits, no accounting, no logging. What
the broker adds to each call on top of this is its own cost; what this costs is the price of being a Python HTTP
server and client at all. Run: ``python -m benchmarks.bare_proxy --port 8081 --upstream http://127.0.0.1:8080/v1``.
"""

import argparse
from typing import Any

import aiohttp
import uvicorn

from simulator.serving import fast_config

JSON = [(b"content-type", b"application/json")]


class BareProxy:
    """ASGI: ``POST /v1/<path>`` goes to ``<upstream>/<path>`` as it came; anything else answers 200 (health)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] != "POST":
            await self._answer(send, 200, b"{}")
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if self.session is None:  # made on the server's loop
            self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        async with self.session.post(self.upstream + scope["path"].removeprefix("/v1"), data=body,
                                     headers={"content-type": "application/json"}) as resp:
            await self._answer(send, resp.status, await resp.read())

    @staticmethod
    async def _answer(send: Any, status: int, body: bytes) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [*JSON, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="the upstream's base URL, e.g. http://127.0.0.1:8080/v1")
    args = parser.parse_args()
    uvicorn.Server(fast_config(BareProxy(args.upstream), "127.0.0.1", args.port)).run()


if __name__ == "__main__":
    main()
