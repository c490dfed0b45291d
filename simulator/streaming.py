"""Server-sent events for ``stream: true``: the rendered answer cut into OpenAI's chunk and event shapes.

Chat and completions send ``chat.completion.chunk`` / ``text_completion`` chunks, then (with
``stream_options.include_usage``) one chunk with empty ``choices`` and the usage, then ``data: [DONE]``. Responses
send typed events (``response.created`` ... ``response.output_text.delta`` ... ``response.completed``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import orjson

from simulator.responses import CHAT_PATH, COMPLETIONS_PATH, RESPONSES_PATH

STREAMED_PATHS = frozenset({CHAT_PATH, COMPLETIONS_PATH, RESPONSES_PATH})  #: endpoints that honour ``stream``
DONE = b"data: [DONE]\n\n"


def pieces(text: str) -> list[str]:
    """Words with their following spaces: the pieces join back to ``text``."""
    return re.findall(r"\S+\s*|\s+", text) or [""]


def _data(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def _include_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def chat_events(payload: dict[str, Any], body: dict[str, Any]) -> Iterator[bytes]:
    usage = _include_usage(body)
    head = {k: payload[k] for k in ("id", "created", "model", "system_fingerprint")}
    head["object"] = "chat.completion.chunk"

    def chunk(index: int, delta: dict[str, Any], finish: str | None) -> bytes:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        return _data({**head, "choices": [choice], **({"usage": None} if usage else {})})

    for choice in payload["choices"]:
        index, text = choice["index"], choice["message"]["content"] or ""
        yield chunk(index, {"role": "assistant", "content": "", "refusal": None}, None)
        for piece in pieces(text):
            yield chunk(index, {"content": piece}, None)
        yield chunk(index, {}, choice["finish_reason"])
    if usage:
        yield _data({**head, "choices": [], "usage": payload["usage"]})
    yield DONE


def completion_events(payload: dict[str, Any], body: dict[str, Any]) -> Iterator[bytes]:
    usage = _include_usage(body)
    head = {k: payload[k] for k in ("id", "object", "created", "model")}
    for choice in payload["choices"]:
        parts = pieces(choice["text"])
        for n, piece in enumerate(parts):
            finish = choice["finish_reason"] if n == len(parts) - 1 else None
            item = {"index": choice["index"], "text": piece, "logprobs": None, "finish_reason": finish}
            yield _data({**head, "choices": [item], **({"usage": None} if usage else {})})
    if usage:
        yield _data({**head, "choices": [], "usage": payload["usage"]})
    yield DONE


def response_events(payload: dict[str, Any]) -> Iterator[bytes]:
    seq = iter(range(1_000_000))

    def event(kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": next(seq), **fields}
        return b"event: " + kind.encode() + b"\n" + _data(data)

    running = {**payload, "status": "in_progress", "output": [], "usage": None}
    yield event("response.created", response=running)
    yield event("response.in_progress", response=running)
    for out_index, item in enumerate(payload["output"]):
        yield event("response.output_item.added", output_index=out_index,
                    item={**item, "status": "in_progress", "content": []})
        for part_index, part in enumerate(item["content"]):
            ids = {"item_id": item["id"], "output_index": out_index, "content_index": part_index}
            yield event("response.content_part.added", **ids, part={**part, "text": ""})
            for piece in pieces(part["text"]):
                yield event("response.output_text.delta", **ids, delta=piece, logprobs=[])
            yield event("response.output_text.done", **ids, text=part["text"], logprobs=[])
            yield event("response.content_part.done", **ids, part=part)
        yield event("response.output_item.done", output_index=out_index, item=item)
    yield event("response.completed" if payload["status"] == "completed" else "response.incomplete",
                response=payload)


def events(path: str, payload: dict[str, Any], body: dict[str, Any]) -> Iterator[bytes]:
    """The SSE byte frames of ``payload`` (the non-streamed answer) for a streamed request to ``path``."""
    if path == CHAT_PATH:
        return chat_events(payload, body)
    if path == COMPLETIONS_PATH:
        return completion_events(payload, body)
    return response_events(payload)
