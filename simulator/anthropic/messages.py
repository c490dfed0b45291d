"""Anthropic's ``POST /v1/messages``: request checks, deterministic answers and Anthropic's wording of errors.

:func:`prepare_message` validates and measures a request (as :func:`~simulator.responses.prepare`
does for OpenAI's endpoints) and :func:`render_message` answers it with the same deterministic reply text
(:func:`~simulator.responses.reply_text`). :class:`MessagesDialect` plugs both into the simulator's
shared request pipeline (rate limits, injected failures, latency, stats) and rewords that pipeline's
OpenAI-shaped errors and headers the way Anthropic sends them: ``{"type":"error","error":{"type","message"}}``,
``request-id`` and ``anthropic-ratelimit-*``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Iterator
from typing import Any

import orjson

from simulator.anthropic.streaming import message_events
from simulator.config import SimulatorConfig
from simulator.errors import RequestError
from simulator.limits import ORGANIZATION
from simulator.responses import Prepared, Rendered, content_text, content_tokens, estimate_tokens, reply_text
from simulator.structured import sample_schema

MESSAGES_PATH = "/v1/messages"  #: Anthropic's Messages endpoint (POST)
ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
    413: "request_too_large", 429: "rate_limit_error", 500: "api_error", 503: "overloaded_error",
    529: "overloaded_error",
}  #: Anthropic's error type for each HTTP status (anything else: api_error)
_HEADERS: dict[str, str] = {
    "x-request-id": "request-id",
    "retry-after": "retry-after",
    "x-ratelimit-limit-requests": "anthropic-ratelimit-requests-limit",
    "x-ratelimit-remaining-requests": "anthropic-ratelimit-requests-remaining",
    "x-ratelimit-limit-tokens": "anthropic-ratelimit-tokens-limit",
    "x-ratelimit-remaining-tokens": "anthropic-ratelimit-tokens-remaining",
}  #: the pipeline's headers Anthropic sends too, under its names (the others are dropped)
_RESETS: dict[str, str] = {
    "x-ratelimit-reset-requests": "anthropic-ratelimit-requests-reset",
    "x-ratelimit-reset-tokens": "anthropic-ratelimit-tokens-reset",
}  #: reset durations, sent by Anthropic as RFC 3339 times
_ROLES = ("user", "assistant")


def anthropic_error(status: int, message: str, request_id: str | None = None) -> dict[str, Any]:
    """Anthropic's error envelope for an answer with HTTP ``status``."""
    body: dict[str, Any] = {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"),
                                                      "message": message}}
    if request_id is not None:
        body["request_id"] = request_id
    return body


def rfc3339(unix: float | None) -> str | None:
    """A Unix time as Anthropic writes times (``2024-08-20T18:37:24.100435Z``)."""
    if unix is None:
        return None
    return dt.datetime.fromtimestamp(unix, dt.UTC).isoformat().replace("+00:00", "Z")


def prepare_message(body: dict[str, Any]) -> Prepared:
    """Validate and measure a Messages request; raise :class:`RequestError` (400) as Anthropic would."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError("model: Field required")
    limit = body.get("max_tokens")
    if limit is None:
        raise RequestError("max_tokens: Field required")
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise RequestError("max_tokens: Input should be an integer greater than or equal to 1")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages: Field required" if messages is None
                           else "messages: at least one message is required")
    system = body.get("system")
    if system is not None and not isinstance(system, str | list):
        raise RequestError("system: Input should be a valid string or a list of text blocks")
    prompt_tokens, last_user = 3 + content_tokens(system), ""
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in _ROLES:
            raise RequestError(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        content = message.get("content")
        if not isinstance(content, str | list):
            raise RequestError(f"messages.{i}.content: Input should be a valid string or a list of content blocks")
        prompt_tokens += content_tokens(content) + 3
        if role == "user":
            last_user = content_text(content)
    _check_tools(body)
    digest = hashlib.sha256(orjson.dumps([system, messages, body.get("tools")])).digest()
    return Prepared(MESSAGES_PATH, model, prompt_tokens, limit, body, limit, 1, [(last_user, digest)])


def _check_tools(body: dict[str, Any]) -> None:
    tools = body.get("tools")
    if tools is None:
        return
    if not isinstance(tools, list) or not all(isinstance(t, dict) and isinstance(t.get("name"), str) for t in tools):
        raise RequestError("tools: Input should be a list of tools, each with a name")
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "tool" and _forced_tool(body) is None:
        raise RequestError(f"tool_choice.name: no tool named {choice.get('name')!r} in tools")


def _forced_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    """The tool a request makes the model call (``tool_choice`` any or tool), if any."""
    tools, choice = body.get("tools") or [], body.get("tool_choice")
    if not isinstance(choice, dict) or not tools:
        return None
    if choice.get("type") == "any":
        return dict(tools[0])
    if choice.get("type") == "tool":
        return next((dict(t) for t in tools if t.get("name") == choice.get("name")), None)
    return None


def render_message(p: Prepared, ident: str, now: int) -> Rendered:
    """The Message answering a prepared request: a forced tool call, else the deterministic reply text cut at
    the first stop sequence or at ``max_tokens``."""
    hint, digest = p.inputs[0]
    content: list[dict[str, Any]] = []
    stop_sequence = None
    tool = _forced_tool(p.body)
    if tool is not None:
        value = sample_schema(tool.get("input_schema"), int.from_bytes(digest[:8], "big"))
        arguments = value if isinstance(value, dict) else {}
        content.append({"type": "tool_use", "id": f"toolu_{ident}", "name": tool["name"], "input": arguments})
        tokens, stop_reason = estimate_tokens(orjson.dumps(arguments).decode()), "tool_use"
    else:
        text, tokens, finish = reply_text("Simulated reply", digest, 0, hint, p.limit)
        stop_reason = "max_tokens" if finish == "length" else "end_turn"
        sequences = [s for s in p.body.get("stop_sequences") or [] if isinstance(s, str) and s and s in text]
        if sequences:
            stop_sequence = min(sequences, key=text.index)
            text = text[: text.index(stop_sequence)]
            tokens, stop_reason = estimate_tokens(text), "stop_sequence"
        if text:
            content.append({"type": "text", "text": text})
    payload = {
        "id": f"msg_{ident}",
        "type": "message",
        "role": "assistant",
        "model": p.model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": {"input_tokens": p.prompt_tokens, "output_tokens": tokens, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 0},
    }
    return Rendered(payload, tokens)


def _seconds(duration: str) -> float:
    """Seconds of an OpenAI reset duration (``"120ms"``, ``"17.64s"``, ``"6m0s"``)."""
    try:
        if duration.endswith("ms"):
            return float(duration[:-2]) / 1000
        minutes, _, rest = duration.rpartition("m")
        return float(minutes or 0) * 60 + float(rest.rstrip("s") or 0)
    except ValueError:
        return 0.0


class MessagesDialect:
    """Anthropic's Messages API on the simulator's shared pipeline (see ``Dialect`` in the app)."""

    def prepare(self, path: str, body: dict[str, Any], config: SimulatorConfig) -> Prepared:
        return prepare_message(body)

    def render(self, prepared: Prepared, ident: str, now: int, config: SimulatorConfig) -> Rendered:
        return render_message(prepared, ident, now)

    def error(self, status: int, payload: dict[str, Any]) -> dict[str, Any]:
        """Reword an OpenAI error envelope as Anthropic's."""
        inner = payload.get("error")
        message = inner.get("message") if isinstance(inner, dict) else None
        return anthropic_error(status, str(message or "Error"))

    def stream(self, path: str, payload: dict[str, Any], body: dict[str, Any]) -> Iterator[bytes] | None:
        """Anthropic's events (:mod:`.streaming`) for ``stream: true``."""
        return message_events(payload) if body.get("stream") is True else None

    def headers(self, headers: dict[str, str]) -> dict[str, str]:
        """Anthropic's names for the pipeline's headers; OpenAI-only headers are dropped."""
        out = {"anthropic-organization-id": ORGANIZATION}
        now = time.time()
        for name, value in headers.items():
            if name in _HEADERS:
                out[_HEADERS[name]] = value
            elif name in _RESETS:
                out[_RESETS[name]] = rfc3339(now + _seconds(value)) or ""
        return out
