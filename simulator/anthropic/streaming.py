"""Anthropic's ``stream: true`` on ``POST /v1/messages``: the rendered Message cut into its server-sent events.

``message_start`` (the Message without content, input tokens counted, one output token), a ``ping``, then per
content block ``content_block_start``, ``content_block_delta`` (``text_delta`` per word, or ``input_json_delta``
pieces of a tool call's arguments) and ``content_block_stop``, then ``message_delta`` (stop reason and the output
tokens) and ``message_stop``. Every event carries an ``event:`` line naming its type, as Anthropic sends them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from simulator.streaming import pieces

JSON_PIECE = 16  #: characters of a tool call's arguments per ``input_json_delta``


def _event(payload: dict[str, Any]) -> bytes:
    kind: str = payload["type"]
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def _deltas(block: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if block["type"] == "tool_use":
        arguments = orjson.dumps(block.get("input") or {}).decode()
        for at in range(0, len(arguments), JSON_PIECE):
            yield {"type": "input_json_delta", "partial_json": arguments[at:at + JSON_PIECE]}
    else:
        for piece in pieces(block.get("text", "")):
            yield {"type": "text_delta", "text": piece}


def message_events(message: dict[str, Any]) -> Iterator[bytes]:
    """The SSE frames of ``message`` (the non-streamed answer) as Anthropic streams it."""
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": {**usage, "output_tokens": 1}}
    yield _event({"type": "message_start", "message": start})
    yield _event({"type": "ping"})
    for index, block in enumerate(message["content"]):
        empty = {**block, "input": {}} if block["type"] == "tool_use" else {**block, "text": ""}
        yield _event({"type": "content_block_start", "index": index, "content_block": empty})
        for delta in _deltas(block):
            yield _event({"type": "content_block_delta", "index": index, "delta": delta})
        yield _event({"type": "content_block_stop", "index": index})
    yield _event({"type": "message_delta", "delta": {"stop_reason": message["stop_reason"],
                                                     "stop_sequence": message["stop_sequence"]},
                  "usage": {"output_tokens": usage["output_tokens"]}})
    yield _event({"type": "message_stop"})
