"""Token estimates before a call: what a provider counts against its tokens-per-minute limit at admission
(prompt + the most the reply may use). Actual ``usage`` corrects it after the call."""

import math
from typing import Any

DEFAULT_OUTPUT_TOKENS = 16  #: reply budget assumed when a request sets no max tokens
CHARS_PER_TOKEN = 4  #: English averages about four characters per token
MESSAGE_OVERHEAD = 3  #: tokens per chat message for role and separators


def _chars(value: Any) -> int:
    """Characters of text in ``value``: strings, lists of them, and the ``content``/``text`` of parts.

    Iterative, so a body nested however deep cannot exhaust the interpreter's stack.
    """
    total, stack = 0, [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend((item.get("content"), item.get("text")))
    return total


def prompt_tokens(body: dict[str, Any]) -> int:
    messages = body.get("messages")
    if isinstance(messages, list):
        return sum(math.ceil(_chars(m) / CHARS_PER_TOKEN) + MESSAGE_OVERHEAD for m in messages) + MESSAGE_OVERHEAD
    source = body.get("input", body.get("prompt"))
    if isinstance(source, list) and source and all(isinstance(t, int) for t in source):
        return len(source)  # already token ids
    return max(1, math.ceil(_chars(source) / CHARS_PER_TOKEN))


def output_budget(endpoint: str, body: dict[str, Any]) -> int:
    if endpoint in ("/v1/embeddings", "/v1/moderations"):
        return 0
    for key in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        if isinstance(body.get(key), int):
            return int(body[key])
    return DEFAULT_OUTPUT_TOKENS


def admission_tokens(endpoint: str, body: dict[str, Any]) -> int:
    """Tokens a call is charged against TPM when it is admitted."""
    return prompt_tokens(body) + output_budget(endpoint, body)
