"""Deterministic, OpenAI-shaped response bodies: pure functions, no I/O.

Each endpoint is handled in two steps: :func:`prepare` validates a decoded request body and measures it
(prompt tokens, output tokens to reserve for rate limiting), raising :class:`RequestError` for a 4xx;
:func:`render` then produces the response body. The same request always yields the same content and
vectors; only ids and timestamps vary.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from simulator.errors import RequestError, missing, positive_int, require_model
from simulator.structured import structured_text
from simulator.vectors import embedding_items, moderation_result

CHAT_PATH = "/v1/chat/completions"
COMPLETIONS_PATH = "/v1/completions"
EMBEDDINGS_PATH = "/v1/embeddings"
RESPONSES_PATH = "/v1/responses"
MODERATIONS_PATH = "/v1/moderations"
ENDPOINTS: tuple[str, ...] = (CHAT_PATH, COMPLETIONS_PATH, EMBEDDINGS_PATH, RESPONSES_PATH, MODERATIONS_PATH)
"""The inference endpoints the simulator serves (POST)."""

SIM_ERROR_400_MARKER = "__sim_error_400__"
"""Text that, anywhere in a request, makes it fail with a deterministic 400."""
SIM_SLOW_MARKER = "__sim_slow__"
"""Text that, anywhere in a request, makes it answer after ``slow_seconds`` instead of a drawn latency."""
DEFAULT_RESERVED_OUTPUT = 16  #: output tokens a chat-like request reserves (per choice) without a max
REPLY_WORDS = 12  #: words of the last user message echoed in a reply
NON_TEXT_PART_TOKENS = 85  #: tokens counted for an image/audio/file content part
MAX_CHOICES = 128  #: largest ``n`` accepted
DEFAULT_MODERATION_MODEL = "omni-moderation-latest"  #: model used when a moderation request names none


@dataclass(slots=True)
class Prepared:
    """A validated request, measured for rate limiting, ready to render."""

    endpoint: str
    model: str
    prompt_tokens: int
    reserved_tokens: int
    """Output tokens the request may use, counted against TPM before it runs."""
    body: dict[str, Any]
    limit: int | None = None
    """Cap on output tokens per choice, if the request set one."""
    n: int = 1
    inputs: list[tuple[str, bytes]] = field(default_factory=list)
    """(text, digest) per input: the echoed text (or the text embedded) and its sha256."""
    tokens: list[int] = field(default_factory=list)
    """Prompt tokens per input, where the response reports them per input."""


class Rendered(NamedTuple):
    """A response body and the output tokens it carries."""

    payload: dict[str, Any]
    completion_tokens: int


def estimate_tokens(text: str) -> int:
    """Rough token count of a text: one token per 4 characters, at least 1."""
    return max(1, -(-len(text) // 4))


def content_text(content: Any) -> str:
    """The text of a message content: a string, or the text of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(part.get("text", "")) for part in content if isinstance(part, dict) and "text" in part
        )
    return ""


def content_tokens(content: Any) -> int:
    """Tokens of a message content; non-text parts count a fixed amount each."""
    if content is None:
        return 0
    if isinstance(content, str):
        return estimate_tokens(content)
    if isinstance(content, list):
        total = 0
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                total += estimate_tokens(part["text"])
            else:
                total += NON_TEXT_PART_TOKENS
        return total
    return estimate_tokens(orjson.dumps(content).decode())


def _digest(value: Any) -> bytes:
    return hashlib.sha256(orjson.dumps(value)).digest()


def _messages_tokens(items: list[Any]) -> tuple[int, str]:
    """Prompt tokens of chat-style messages and the text of the last user message."""
    total = 3
    last_user = ""
    for item in items:
        if not isinstance(item, dict):
            raise RequestError("Invalid type for 'messages': expected an array of objects.", param="messages",
                               code="invalid_type")
        content = item.get("content", item.get("output"))
        total += content_tokens(content) + 3
        if item.get("role") == "user":
            last_user = content_text(content)
    return total, last_user


def reply_text(prefix: str, digest: bytes, index: int, hint: str, limit: int | None) -> tuple[str, int, str]:
    """A deterministic reply, its output tokens and finish reason, truncated to ``limit`` tokens."""
    tag = digest.hex()[:8] if index == 0 else f"{digest.hex()[:8]}-{index}"
    text = f"{prefix} {tag}: {' '.join(hint.split()[:REPLY_WORDS])}".rstrip()
    natural = estimate_tokens(text)
    if limit is not None and limit < natural:
        return text[: limit * 4], limit, "length"
    return text, natural, "stop"


def fit_text(text: str, limit: int | None) -> tuple[str, int, str]:
    """``text``, its output tokens and finish reason, truncated to ``limit`` tokens."""
    natural = estimate_tokens(text)
    if limit is not None and limit < natural:
        return text[: limit * 4], limit, "length"
    return text, natural, "stop"


def prompt_details(prompt_tokens: int) -> dict[str, int]:
    """Usage's ``prompt_tokens_details`` as OpenAI fills it: all text, no cache hits or writes."""
    return {"cached_tokens": 0, "cache_write_tokens": 0, "audio_tokens": 0, "image_tokens": 0,
            "text_tokens": prompt_tokens}


def completion_details(completion_tokens: int) -> dict[str, int]:
    return {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0, "text_tokens": completion_tokens}


def prepare_chat(body: dict[str, Any], max_inputs: int) -> Prepared:
    model = require_model(body)
    messages = body.get("messages")
    if messages is None:
        raise missing("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("Invalid 'messages': expected a non-empty array.", param="messages",
                           code="invalid_value")
    prompt_tokens, last_user = _messages_tokens(messages)
    limit = positive_int(body, "max_completion_tokens") or positive_int(body, "max_tokens")
    n = positive_int(body, "n", MAX_CHOICES) or 1
    reserved = (limit or DEFAULT_RESERVED_OUTPUT) * n
    inputs = [(last_user, _digest(messages))]
    return Prepared(CHAT_PATH, model, prompt_tokens, reserved, body, limit, n, inputs)


def render_chat(p: Prepared, ident: str, now: int, embedding_dim: int) -> Rendered:
    hint, digest = p.inputs[0]
    choices = []
    completion_tokens = 0
    for index in range(p.n):
        structured = structured_text(p.body, digest, index, hint)
        if structured is None:
            text, tokens, finish = reply_text("Simulated reply", digest, index, hint, p.limit)
        else:
            text, tokens, finish = fit_text(structured, p.limit)
        completion_tokens += tokens
        choices.append({
            "index": index,
            "message": {"role": "assistant", "content": text, "refusal": None},
            "logprobs": None,
            "finish_reason": finish,
        })
    payload = {
        "id": f"chatcmpl-{ident}",
        "object": "chat.completion",
        "created": now,
        "model": p.model,
        "choices": choices,
        "usage": {
            "prompt_tokens": p.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": p.prompt_tokens + completion_tokens,
            "prompt_tokens_details": prompt_details(p.prompt_tokens),
            "completion_tokens_details": completion_details(completion_tokens),
        },
        "system_fingerprint": "fp_sim",
    }
    return Rendered(payload, completion_tokens)


def _token_ids(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in value)


def _text_inputs(value: Any, param: str) -> list[tuple[str, int]]:
    """Normalise ``str | list[str] | list[int] | list[list[int]]`` to (text, tokens) pairs."""
    invalid = RequestError(f"'$.{param}' is invalid. Please check the API reference: "
                           "https://platform.openai.com/docs/api-reference.", param=param)
    if isinstance(value, str):
        items: list[Any] = [value]
    elif _token_ids(value) and value:
        items = [value]
    elif isinstance(value, list) and value:
        items = value
    else:
        raise invalid
    pairs: list[tuple[str, int]] = []
    for item in items:
        if isinstance(item, str) and item:
            pairs.append((item, estimate_tokens(item)))
        elif _token_ids(item) and item:
            pairs.append((orjson.dumps(item).decode(), len(item)))
        else:
            raise invalid
    return pairs


def prepare_completions(body: dict[str, Any], max_inputs: int) -> Prepared:
    model = require_model(body)
    if "prompt" not in body:
        raise missing("prompt")
    pairs = _text_inputs(body["prompt"], "prompt")
    limit = positive_int(body, "max_tokens")
    n = positive_int(body, "n", MAX_CHOICES) or 1
    inputs = [(text, hashlib.sha256(text.encode()).digest()) for text, _ in pairs]
    prompt_tokens = sum(tokens for _, tokens in pairs)
    reserved = (limit or DEFAULT_RESERVED_OUTPUT) * n * len(pairs)
    return Prepared(COMPLETIONS_PATH, model, prompt_tokens, reserved, body, limit, n, inputs)


def render_completions(p: Prepared, ident: str, now: int, embedding_dim: int) -> Rendered:
    choices = []
    completion_tokens = 0
    for prompt_index, (hint, digest) in enumerate(p.inputs):
        for index in range(p.n):
            text, tokens, finish = reply_text(" Simulated completion", digest, index, hint, p.limit)
            completion_tokens += tokens
            choices.append({"text": text, "index": prompt_index * p.n + index, "logprobs": None,
                            "finish_reason": finish})
    payload = {
        "id": f"cmpl-{ident}",
        "object": "text_completion",
        "created": now,
        "model": p.model,
        "choices": choices,
        "usage": {"prompt_tokens": p.prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": p.prompt_tokens + completion_tokens,
                  "prompt_tokens_details": prompt_details(p.prompt_tokens),
                  "completion_tokens_details": completion_details(completion_tokens)},
        "system_fingerprint": "fp_sim",
    }
    return Rendered(payload, completion_tokens)


def prepare_embeddings(body: dict[str, Any], max_inputs: int) -> Prepared:
    model = require_model(body)
    if "input" not in body:
        raise missing("input")
    pairs = _text_inputs(body["input"], "input")
    if len(pairs) > max_inputs:
        raise RequestError(f"Too many inputs. The max number of inputs is {max_inputs}. We recommend "
                           "splitting your request into smaller batches.", param="input")
    positive_int(body, "dimensions", 16384)
    if body.get("encoding_format", "float") not in ("float", "base64"):
        raise RequestError("Invalid 'encoding_format': expected 'float' or 'base64'.",
                           param="encoding_format", code="invalid_value")
    inputs = [(text, hashlib.sha256(f"{model}\x00{text}".encode()).digest()) for text, _ in pairs]
    tokens = [count for _, count in pairs]
    return Prepared(EMBEDDINGS_PATH, model, sum(tokens), 0, body, None, 1, inputs, tokens)


def render_embeddings(p: Prepared, ident: str, now: int, embedding_dim: int) -> Rendered:
    dim = p.body.get("dimensions") or embedding_dim
    as_base64 = p.body.get("encoding_format") == "base64"
    payload = {
        "object": "list",
        "data": embedding_items([digest for _, digest in p.inputs], dim, as_base64),
        "model": p.model,
        "usage": {"prompt_tokens": p.prompt_tokens, "total_tokens": p.prompt_tokens},
    }
    return Rendered(payload, 0)


def prepare_responses(body: dict[str, Any], max_inputs: int) -> Prepared:
    model = require_model(body)
    raw = body.get("input")
    if raw is None:
        raise missing("input")
    instructions = body.get("instructions")
    if isinstance(raw, str):
        prompt_tokens, last_user = estimate_tokens(raw) + 6, raw
    elif isinstance(raw, list) and raw:
        prompt_tokens, last_user = _messages_tokens(raw)
    else:
        raise RequestError("Invalid 'input': expected a string or a non-empty array.", param="input",
                           code="invalid_value")
    if isinstance(instructions, str) and instructions:
        prompt_tokens += estimate_tokens(instructions) + 3
    limit = positive_int(body, "max_output_tokens")
    digest = _digest([instructions, raw])
    return Prepared(RESPONSES_PATH, model, prompt_tokens, limit or DEFAULT_RESERVED_OUTPUT, body, limit, 1,
                    [(last_user, digest)])


def render_responses(p: Prepared, ident: str, now: int, embedding_dim: int) -> Rendered:
    hint, digest = p.inputs[0]
    text, tokens, finish = reply_text("Simulated reply", digest, 0, hint, p.limit)
    complete = finish == "stop"
    status = "completed" if complete else "incomplete"
    payload = {
        "id": f"resp_{ident}",
        "object": "response",
        "created_at": now,
        "status": status,
        "error": None,
        "incomplete_details": None if complete else {"reason": "max_output_tokens"},
        "instructions": p.body.get("instructions"),
        "max_output_tokens": p.limit,
        "model": p.model,
        "output": [{
            "type": "message",
            "id": f"msg_{ident}",
            "status": status,
            "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }],
        "parallel_tool_calls": True,
        "previous_response_id": p.body.get("previous_response_id"),
        "temperature": p.body.get("temperature", 1.0),
        "tool_choice": p.body.get("tool_choice", "auto"),
        "tools": p.body.get("tools", []),
        "top_p": p.body.get("top_p", 1.0),
        "metadata": p.body.get("metadata") or {},
        "usage": {
            "input_tokens": p.prompt_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0,
                                     "cache_write_tokens_details": {"ttl_30m_tokens": 0, "ttl_12h_tokens": 0}},
            "output_tokens": tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": p.prompt_tokens + tokens,
        },
    }
    return Rendered(payload, tokens)


def prepare_moderations(body: dict[str, Any], max_inputs: int) -> Prepared:
    model = body.get("model") or DEFAULT_MODERATION_MODEL
    if not isinstance(model, str):
        raise RequestError("Invalid 'model': expected a string.", param="model", code="invalid_type")
    raw = body.get("input")
    if raw is None:
        raise missing("input")
    if isinstance(raw, list) and raw and all(isinstance(item, dict) for item in raw):
        texts = [content_text(raw)]  # one multimodal input: a list of content parts
    elif isinstance(raw, list) and raw and all(isinstance(item, str) for item in raw):
        texts = list(raw)
    elif isinstance(raw, str):
        texts = [raw]
    else:
        raise RequestError("Invalid 'input': expected a string, an array of strings or of content parts.",
                           param="input", code="invalid_value")
    inputs = [(text, hashlib.sha256(text.encode()).digest()) for text in texts]
    prompt_tokens = sum(estimate_tokens(text) for text in texts)
    return Prepared(MODERATIONS_PATH, model, prompt_tokens, 0, body, None, 1, inputs)


def render_moderations(p: Prepared, ident: str, now: int, embedding_dim: int) -> Rendered:
    results = [moderation_result(text, digest) for text, digest in p.inputs]
    return Rendered({"id": f"modr-{ident}", "model": p.model, "results": results}, 0)


Preparer = Callable[[dict[str, Any], int], Prepared]
Renderer = Callable[[Prepared, str, int, int], Rendered]

HANDLERS: dict[str, tuple[Preparer, Renderer]] = {
    CHAT_PATH: (prepare_chat, render_chat),
    COMPLETIONS_PATH: (prepare_completions, render_completions),
    EMBEDDINGS_PATH: (prepare_embeddings, render_embeddings),
    RESPONSES_PATH: (prepare_responses, render_responses),
    MODERATIONS_PATH: (prepare_moderations, render_moderations),
}
"""Per endpoint path: how to validate/measure a request and how to answer it."""


def prepare(endpoint: str, body: dict[str, Any], *, max_inputs: int) -> Prepared:
    """Validate and measure a decoded request body for ``endpoint``; raise RequestError if invalid."""
    return HANDLERS[endpoint][0](body, max_inputs)


def render(prepared: Prepared, *, ident: str, now: int, embedding_dim: int) -> Rendered:
    """The response body for a prepared request (``ident`` names it, ``now`` is its Unix time)."""
    return HANDLERS[prepared.endpoint][1](prepared, ident, now, embedding_dim)
