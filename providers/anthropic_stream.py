"""Streamed chat on Anthropic: the Messages API with ``stream: true``, its events told as OpenAI's chunks as they come.

:class:`MessagesRelay` translates, event by event (nothing waits for the whole answer):

- ``message_start`` gives the first chunk (``delta: {"role": "assistant", "content": ""}``, the message's id and
  model) and the input tokens;
- ``content_block_start`` of a ``tool_use`` block opens a tool call (its id and name, arguments ""), and
  ``content_block_delta`` gives ``content`` (``text_delta``) or the call's ``arguments`` (``input_json_delta``);
  thinking and other deltas are left out, as in :func:`~providers.anthropic.message_to_chat`;
- ``message_delta`` gives the chunk with ``finish_reason`` (:data:`~providers.anthropic.FINISH_REASONS`) and the
  output tokens; ``message_stop`` the usage chunk (when the client asked, ``stream_options.include_usage``), then
  ``data: [DONE]``; ``ping`` and unknown events give nothing;
- ``error`` before anything reached the client raises, so the gateway can still try the next deployment
  (retryable for ``overloaded_error``, ``api_error`` and ``rate_limit_error``); after, it is told as OpenAI's
  ``data: {"error": {...}}`` event, on which the official SDK raises, and the stream ends.
"""

import time
from typing import Any

import httpx
import orjson

from broker.errors import RetryableUpstream, TerminalUpstream, UpstreamError
from providers.anthropic import FINISH_REASONS, AnthropicMessages, chat_usage, messages_body, openai_error
from providers.anthropic import raise_for_status as raise_for_anthropic_status
from providers.base import RETRYABLE_STATUSES
from providers.sse import DONE, data_event, event_payload, open_events

ERROR_STATUSES: dict[str, int] = {
    "invalid_request_error": 400, "authentication_error": 401, "permission_error": 403, "not_found_error": 404,
    "request_too_large": 413, "rate_limit_error": 429, "api_error": 500, "overloaded_error": 529,
}  #: the HTTP status Anthropic gives each error type (an error event mid-stream has none of its own)


def stream_error(payload: dict[str, Any]) -> UpstreamError:
    """The upstream error an ``error`` event tells, with its body in OpenAI's envelope."""
    body = openai_error(payload)
    status = ERROR_STATUSES.get(str(body["error"]["type"]), 500)
    message = f"Upstream stream error: {body['error']['message']}"
    kind = RetryableUpstream if status in RETRYABLE_STATUSES else TerminalUpstream
    return kind(message, code="upstream_stream_error", status=status, body=orjson.dumps(body).decode())


class MessagesRelay:
    """One Anthropic stream told as OpenAI ``chat.completion.chunk`` events (see the module's docstring)."""

    def __init__(self, keep_usage_chunk: bool) -> None:
        self.keep_usage_chunk = keep_usage_chunk
        self.usage: dict[str, Any] | None = None
        self.failure: UpstreamError | None = None
        self._buffer = b""
        self._head: dict[str, Any] = {}
        self._anthropic_usage: dict[str, Any] = {}
        self._tool_calls: dict[int, int] = {}  #: content block index -> tool call index
        self._ended = False

    def feed(self, data: bytes) -> bytes:
        self._buffer += data.replace(b"\r\n", b"\n")
        out: list[bytes] = []
        while not self._ended and (end := self._buffer.find(b"\n\n")) >= 0:
            event, self._buffer = self._buffer[:end + 2], self._buffer[end + 2:]
            out.extend(self._translate(event_payload(event)))
        return b"".join(out)

    def rest(self) -> bytes:
        if not self._ended and self.failure is None:
            self.failure = RetryableUpstream("Upstream ended its stream before message_stop.",
                                             code="upstream_connection_error")
        return b""

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return data_event({**self._head, "choices": [choice], **({"usage": None} if self.keep_usage_chunk else {})})

    def _translate(self, event: dict[str, Any]) -> list[bytes]:
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self._head = {"id": message.get("id"), "object": "chat.completion.chunk", "created": int(time.time()),
                          "model": message.get("model")}
            self._count(message.get("usage"))
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            return self._block_start(int(event.get("index") or 0), event.get("content_block") or {})
        if kind == "content_block_delta":
            return self._delta(int(event.get("index") or 0), event.get("delta") or {})
        if kind == "message_delta":
            self._count(event.get("usage"))
            reason = (event.get("delta") or {}).get("stop_reason")
            return [self._chunk({}, FINISH_REASONS.get(str(reason), "stop"))]
        if kind == "message_stop":
            self._ended = True
            usage = [data_event({**self._head, "choices": [], "usage": self.usage})] if self.keep_usage_chunk else []
            return [*usage, DONE]
        if kind == "error":
            return self._error(event)
        return []  # ping, content_block_stop, and events Anthropic may add

    def _block_start(self, index: int, block: dict[str, Any]) -> list[bytes]:
        if block.get("type") == "tool_use":
            self._tool_calls[index] = n = len(self._tool_calls)
            call = {"index": n, "id": block.get("id"), "type": "function",
                    "function": {"name": block.get("name"), "arguments": ""}}
            return [self._chunk({"tool_calls": [call]})]
        if block.get("type") == "text" and block.get("text"):
            return [self._chunk({"content": block["text"]})]
        return []

    def _delta(self, index: int, delta: dict[str, Any]) -> list[bytes]:
        if delta.get("type") == "text_delta":
            return [self._chunk({"content": delta.get("text", "")})]
        if delta.get("type") == "input_json_delta" and index in self._tool_calls:
            call = {"index": self._tool_calls[index], "function": {"arguments": delta.get("partial_json", "")}}
            return [self._chunk({"tool_calls": [call]})]
        return []

    def _count(self, usage: Any) -> None:
        """Anthropic's usage counts are running totals: the latest of each wins."""
        if isinstance(usage, dict):
            self._anthropic_usage.update({k: v for k, v in usage.items() if v is not None})
            self.usage = chat_usage(self._anthropic_usage)

    def _error(self, event: dict[str, Any]) -> list[bytes]:
        failure = stream_error(event)
        if not self._head:  # nothing told yet: the gateway may still go to the next deployment
            raise failure
        self.failure, self._ended = failure, True
        return [data_event(orjson.loads(failure.body or "{}"))]


class AnthropicStreamingMessages(AnthropicMessages):
    """:class:`~providers.anthropic.AnthropicMessages` that also streams a chat, through :class:`MessagesRelay`."""

    async def open_stream(self, endpoint: str, body: bytes) -> httpx.Response:
        """Anthropic's streamed answer to the chat request, its status checked; the caller reads and closes it."""
        return await open_events(self.client, "messages", messages_body(endpoint, body, stream=True),
                                 raise_for_anthropic_status)

    def relay(self, include_usage: bool) -> MessagesRelay:
        return MessagesRelay(include_usage)
