"""Server-sent events through the gateway: streaming adapters, opening an upstream's stream, and relaying an
OpenAI-compatible upstream's events while reading their usage."""

from typing import Any, Protocol

import httpx
import orjson

from broker.errors import UpstreamError
from providers.base import Adapter
from providers.http import StatusCheck, classified

DONE = b"data: [DONE]\n\n"


class EventRelay(Protocol):
    """Turns an upstream's stream, as its bytes come, into the OpenAI events the client gets."""

    usage: dict[str, Any] | None
    """The call's usage in OpenAI's words, once the upstream has told it."""
    failure: UpstreamError | None
    """Why the stream broke after it started, if the upstream said so in an event."""

    def feed(self, data: bytes) -> bytes:
        """The events for the client that ``data`` completes (raises :class:`UpstreamError` for an upstream error
        told before anything was sent, so that the call can still go to the next deployment)."""
        ...

    def rest(self) -> bytes:
        """What is left for the client once the upstream has ended its stream."""
        ...


class StreamingAdapter(Adapter, Protocol):
    """A real-time adapter that can stream too (every provider kind's is one)."""

    async def open_stream(self, endpoint: str, body: bytes) -> httpx.Response:
        """The upstream's answer opened, its status checked (errors raised as :class:`UpstreamError`), its body not
        yet read."""
        ...

    def relay(self, include_usage: bool) -> EventRelay:
        """A relay for one stream; ``include_usage``: the client asked for the usage chunk."""
        ...


async def open_events(client: httpx.AsyncClient, path: str, body: bytes, check: StatusCheck) -> httpx.Response:
    """POST ``body`` to ``path`` and return the streamed answer once its status is in; ``check`` sees an error
    answer with its body read (and closed). The caller reads and closes a good one."""
    request = client.build_request("POST", path, content=body, headers={"content-type": "application/json"})
    with classified():
        resp = await client.send(request, stream=True)
    if resp.status_code >= 400:
        try:
            with classified():
                await resp.aread()
        finally:
            await resp.aclose()
        check(resp)
    return resp


def data_event(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def event_payload(event: bytes) -> dict[str, Any]:
    """The JSON object on an event's ``data:`` line ({} if none)."""
    for line in event.split(b"\n"):
        if line.startswith(b"data:"):
            try:
                parsed = orjson.loads(line[5:])
            except orjson.JSONDecodeError:
                return {}
            return parsed if isinstance(parsed, dict) else {}
    return {}


class Relay:
    """An OpenAI-compatible upstream's events as they are: cut into whole events, the usage they report kept, and
    the usage-only chunk the client did not ask for dropped (the gateway always asks the upstream for usage, to
    account for the call)."""

    failure: UpstreamError | None = None

    def __init__(self, keep_usage_chunk: bool) -> None:
        self.keep_usage_chunk = keep_usage_chunk
        self.usage: dict[str, Any] | None = None
        self._buffer = b""

    def feed(self, data: bytes) -> bytes:
        self._buffer += data.replace(b"\r\n", b"\n")
        out: list[bytes] = []
        while (end := self._buffer.find(b"\n\n")) >= 0:
            event, self._buffer = self._buffer[:end + 2], self._buffer[end + 2:]
            if b'"usage":{' in event or b'"usage": {' in event:
                payload = event_payload(event)
                usage = payload.get("usage") or (payload.get("response") or {}).get("usage")
                if isinstance(usage, dict):
                    self.usage = usage
                if payload.get("choices") == [] and not self.keep_usage_chunk:
                    continue
            out.append(event)
        return b"".join(out)

    def rest(self) -> bytes:
        """What the upstream sent after its last whole event."""
        rest, self._buffer = self._buffer, b""
        return rest
