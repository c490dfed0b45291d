"""Server-sent events through the gateway: streaming adapters, relaying an upstream's events while reading their
usage, and a chat completion told as chunks (for adapters that cannot stream)."""

from typing import Any, Protocol, runtime_checkable

import httpx
import orjson

DONE = b"data: [DONE]\n\n"


@runtime_checkable
class StreamingAdapter(Protocol):
    """An adapter that can stream: the upstream's answer opened, its status checked (errors raised as
    :class:`~broker.errors.UpstreamError`), its body not yet read."""

    async def open_stream(self, endpoint: str, body: bytes) -> httpx.Response: ...


def _data(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


class Relay:
    """Cuts an upstream event stream into whole events, keeps the usage it reports, and drops the usage-only chunk
    the client did not ask for (the gateway always asks the upstream for usage, to account for the call)."""

    def __init__(self, keep_usage_chunk: bool) -> None:
        self.keep_usage_chunk = keep_usage_chunk
        self.usage: dict[str, Any] | None = None
        self._buffer = b""

    def feed(self, data: bytes) -> bytes:
        """The whole events ``data`` completes, as they go to the client."""
        self._buffer += data.replace(b"\r\n", b"\n")
        out: list[bytes] = []
        while (end := self._buffer.find(b"\n\n")) >= 0:
            event, self._buffer = self._buffer[:end + 2], self._buffer[end + 2:]
            if b'"usage":{' in event or b'"usage": {' in event:
                payload = self._payload(event)
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

    @staticmethod
    def _payload(event: bytes) -> dict[str, Any]:
        for line in event.split(b"\n"):
            if line.startswith(b"data:"):
                try:
                    parsed = orjson.loads(line[5:])
                except orjson.JSONDecodeError:
                    return {}
                return parsed if isinstance(parsed, dict) else {}
        return {}


def chat_chunks(completion: dict[str, Any], include_usage: bool) -> bytes:
    """A chat completion as the events a streamed call would have sent: a role chunk, the content, the finish."""
    head = {"id": completion.get("id"), "object": "chat.completion.chunk", "created": completion.get("created"),
            "model": completion.get("model")}
    extra: dict[str, Any] = {"usage": None} if include_usage else {}
    events = []
    for choice in completion.get("choices") or []:
        message = choice.get("message") or {}
        delta: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
        if message.get("tool_calls"):
            delta["tool_calls"] = [{**call, "index": n} for n, call in enumerate(message["tool_calls"])]
        index = choice.get("index", 0)
        events.append(_data({**head, "choices": [{"index": index, "delta": delta, "finish_reason": None}], **extra}))
        events.append(_data({**head, "choices": [{"index": index, "delta": {},
                                                  "finish_reason": choice.get("finish_reason")}], **extra}))
    if include_usage:
        events.append(_data({**head, "choices": [], "usage": completion.get("usage")}))
    return b"".join(events) + DONE
