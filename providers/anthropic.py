"""Adapter for Anthropic's Messages API, spoken to our users as OpenAI's ``/v1/chat/completions``.

:func:`chat_to_messages` turns an OpenAI chat request into an Anthropic Messages request and
:func:`message_to_chat` turns Anthropic's answer back into a ``chat.completion``; both are pure.
:class:`AnthropicMessages` posts one request through a client from :func:`make_anthropic_client` and sorts the
answer as the OpenAI adapter does (success, :class:`RetryableUpstream`, :class:`TerminalUpstream`), Anthropic's
529 ``overloaded_error`` being one of its retryable statuses. Anthropic's error bodies are handed on in OpenAI's
envelope, ``{"error": {"message", "type", "param": null, "code": null}}``, keeping Anthropic's error type.

Translation:

- ``system`` and ``developer`` messages, wherever they stand, are joined into the top-level ``system``;
- text and ``image_url`` parts become text and image blocks (``data:`` URLs a base64 source, http(s) a url
  source); assistant ``tool_calls`` become ``tool_use`` blocks; ``tool`` messages become ``tool_result``
  blocks of a user turn, and consecutive turns of one role are merged into one turn;
- ``max_completion_tokens`` or ``max_tokens`` give ``max_tokens`` (Anthropic requires it; default
  :data:`DEFAULT_MAX_TOKENS`); ``temperature`` and ``top_p`` pass as they are (Anthropic refuses a
  temperature above 1 itself); ``stop`` gives ``stop_sequences``; function ``tools`` give name, description
  and ``input_schema``; ``tool_choice`` auto/none/required/named gives auto/none/any/tool, and
  ``parallel_tool_calls: false`` gives ``disable_parallel_tool_use``; ``user`` gives ``metadata.user_id``.
- Parameters that would change the result and that Anthropic cannot honour are refused with a 400
  ``unsupported_parameter`` (see :data:`UNSUPPORTED`): ``n`` > 1, a ``response_format`` other than text,
  ``logprobs``/``top_logprobs``, ``logit_bias``, non-zero ``frequency_penalty``/``presence_penalty``, ``audio``
  or non-text ``modalities``, ``prediction``, ``stream``, ``web_search_options``, ``reasoning_effort``, the
  legacy ``functions``/``function_call``, ``function`` messages, non-function tools and content parts other
  than text and images. Every other field (``seed``, ``store``, ``metadata``, ``service_tier``, ...) is dropped.
- Answers: text blocks are joined into ``content`` (None without text), ``tool_use`` blocks become
  ``tool_calls``, other blocks (thinking) are left out; ``stop_reason`` maps by :data:`FINISH_REASONS`; usage
  counts cache reads and writes as prompt tokens, cache reads also as ``cached_tokens``.
"""

import time
from typing import Any

import httpx
import orjson

from broker.catalogue import ProviderConfig
from broker.errors import TerminalUpstream
from providers.answers import invalid_answer
from providers.base import UpstreamResponse, json_object_text, make_client
from providers.base import raise_for_status as raise_for_openai_status
from providers.http import Answer, int_header, json_body, post_json
from schemas.errors import error_envelope

ANTHROPIC_VERSION = "2023-06-01"  #: the ``anthropic-version`` header every call sends
CHAT_ENDPOINT = "/v1/chat/completions"  #: the only OpenAI endpoint Anthropic can serve
DEFAULT_MAX_TOKENS = 4096  #: ``max_tokens`` of a request that sets no limit (Anthropic requires one)
OVERLOADED = 529  #: Anthropic's status for an overloaded API (one of the RETRYABLE_STATUSES)
FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop", "max_tokens": "length",
    "model_context_window_exceeded": "length", "tool_use": "tool_calls", "refusal": "content_filter",
}  #: Anthropic ``stop_reason`` -> OpenAI ``finish_reason`` (anything else: "stop")
UNSUPPORTED: dict[str, str] = {
    "n": "Anthropic returns one choice per request: 'n' must be 1.",
    "response_format": "Anthropic has no JSON mode or structured outputs: only a 'text' response_format works.",
    "logprobs": "Anthropic does not return log probabilities.",
    "top_logprobs": "Anthropic does not return log probabilities.",
    "logit_bias": "Anthropic does not support 'logit_bias'.",
    "frequency_penalty": "Anthropic does not support 'frequency_penalty'.",
    "presence_penalty": "Anthropic does not support 'presence_penalty'.",
    "audio": "Anthropic does not produce audio.",
    "modalities": "Anthropic produces text only.",
    "prediction": "Anthropic does not support predicted outputs.",
    "stream": "Streaming is not available through the batch broker.",
    "web_search_options": "Web search is not available through the Anthropic adapter.",
    "reasoning_effort": "'reasoning_effort' has no Anthropic equivalent here.",
    "functions": "Use 'tools' instead of the legacy 'functions'.",
    "function_call": "Use 'tool_choice' instead of the legacy 'function_call'.",
}
"""Request fields refused when set to a value that would change the result, and why."""
_HARMLESS: dict[str, Any] = {
    "n": (None, 1), "response_format": (None, {"type": "text"}), "logprobs": (None, False),
    "frequency_penalty": (None, 0, 0.0), "presence_penalty": (None, 0, 0.0), "logit_bias": (None, {}),
    "modalities": (None, ["text"]), "stream": (None, False),
}  #: values of an UNSUPPORTED field that change nothing (absent fields are always fine)


def make_anthropic_client(provider: ProviderConfig) -> httpx.AsyncClient:
    """One pooled client per provider per process (:func:`~providers.base.make_client`), with
    Anthropic's ``x-api-key`` and ``anthropic-version`` headers."""
    key = provider.api_key()
    headers = {"anthropic-version": ANTHROPIC_VERSION}
    if key:
        headers["x-api-key"] = key
    return make_client(provider, headers)


def refused(message: str, param: str | None, code: str = "unsupported_parameter") -> TerminalUpstream:
    """A request we cannot send: a 400 with OpenAI's error envelope, as if the upstream had answered it."""
    body = error_envelope(message, "invalid_request_error", param, code)
    return TerminalUpstream(message, code=code, status=400, body=orjson.dumps(body).decode())


def chat_to_messages(body: dict[str, Any]) -> dict[str, Any]:
    """The Anthropic Messages request for an OpenAI chat request; raise :class:`TerminalUpstream` (400) for
    a parameter Anthropic cannot honour or a malformed message."""
    for name, why in UNSUPPORTED.items():
        if name in body and body[name] not in _HARMLESS.get(name, (None,)):
            raise refused(why, name)
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise refused("'messages' must be an array of messages.", "messages", "invalid_value")
    system, turns = _turns(messages)
    request: dict[str, Any] = {"model": body.get("model"), "messages": turns}
    request["max_tokens"] = body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS
    if system:
        request["system"] = system
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            request[name] = body[name]
    stop = body.get("stop")
    if stop:
        request["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    tools = body.get("tools")
    if tools:
        request["tools"] = [_tool(tool, f"tools[{i}]") for i, tool in enumerate(tools)]
        choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
        if choice is not None:
            request["tool_choice"] = choice
    if isinstance(body.get("user"), str) and body["user"]:
        request["metadata"] = {"user_id": body["user"]}
    return request


def _turns(messages: list[Any]) -> tuple[str, list[dict[str, Any]]]:
    """The system text and the user/assistant turns (consecutive turns of one role merged)."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise refused(f"'{where}' must be an object.", where, "invalid_value")
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(_text(message.get("content"), where))
            continue
        if role == "user":
            turn = {"role": "user", "content": _user_blocks(message.get("content"), where)}
        elif role == "assistant":
            turn = {"role": "assistant", "content": _assistant_blocks(message, where)}
        elif role == "tool":
            turn = {"role": "user", "content": [_tool_result(message, where)]}
        else:
            raise refused(f"Messages with role '{role}' cannot be sent to Anthropic.", f"{where}.role")
        if not turn["content"]:
            continue
        if turns and turns[-1]["role"] == turn["role"]:
            turns[-1]["content"] = [*_blocks(turns[-1]["content"]), *_blocks(turn["content"])]
        else:
            turns.append(turn)
    return "\n\n".join(s for s in system if s), turns


def _blocks(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def _text(content: Any, where: str) -> str:
    """The text of a string or of a list of text parts (system, developer and tool messages)."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    raise refused(f"'{where}.content' must be a string or an array of parts.", f"{where}.content", "invalid_value")


def _user_blocks(content: Any, where: str) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise refused(f"'{where}.content' must be a string or an array of parts.", f"{where}.content",
                      "invalid_value")
    blocks = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            blocks.append({"type": "text", "text": str(part.get("text", ""))})
        elif kind == "image_url":
            blocks.append(_image(part.get("image_url"), f"{where}.content[{j}]"))
        else:
            raise refused(f"Content parts of type '{kind}' cannot be sent to Anthropic.",
                          f"{where}.content[{j}].type")
    return blocks


def _image(image: Any, where: str) -> dict[str, Any]:
    url = image.get("url") if isinstance(image, dict) else image
    if isinstance(url, str) and url.startswith("data:"):
        header, _, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if encoding == "base64" and media_type and data:
            return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    elif isinstance(url, str) and url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise refused("An image must be a base64 data: URL or an http(s) URL.", f"{where}.image_url", "invalid_value")


def _assistant_blocks(message: dict[str, Any], where: str) -> list[dict[str, Any]]:
    content = message.get("content")
    parts = [{"text": content}] if isinstance(content, str) else content if isinstance(content, list) else []
    blocks: list[dict[str, Any]] = []
    for part in parts:
        text = part.get("text", part.get("refusal")) if isinstance(part, dict) else None
        if isinstance(text, str) and text:
            blocks.append({"type": "text", "text": text})
    for j, call in enumerate(message.get("tool_calls") or []):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            raise refused("A tool call needs a function.", f"{where}.tool_calls[{j}]", "invalid_value")
        try:
            arguments = orjson.loads(function.get("arguments") or "{}")
        except orjson.JSONDecodeError:
            arguments = None
        if not isinstance(arguments, dict):
            raise refused("Tool call arguments must be a JSON object.", f"{where}.tool_calls[{j}].function.arguments",
                          "invalid_value")
        blocks.append({"type": "tool_use", "id": call.get("id"), "name": function.get("name"), "input": arguments})
    return blocks


def _tool_result(message: dict[str, Any], where: str) -> dict[str, Any]:
    result: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.get("tool_call_id")}
    text = _text(message.get("content"), where)
    if text:
        result["content"] = text
    return result


def _tool(tool: Any, where: str) -> dict[str, Any]:
    function = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
    if not isinstance(function, dict):
        raise refused("Only function tools can be sent to Anthropic.", f"{where}.type")
    converted: dict[str, Any] = {"name": function.get("name"),
                                 "input_schema": function.get("parameters") or {"type": "object", "properties": {}}}
    if function.get("description"):
        converted["description"] = function["description"]
    return converted


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    if choice is None or choice == "auto":
        converted: dict[str, Any] = {"type": "auto"}
    elif choice == "none":
        return {"type": "none"}
    elif choice == "required":
        converted = {"type": "any"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        converted = {"type": "tool", "name": choice["function"].get("name")}
    else:
        raise refused("'tool_choice' must be 'auto', 'none', 'required' or a named function.", "tool_choice",
                      "invalid_value")
    if parallel is False:
        converted["disable_parallel_tool_use"] = True
    elif choice is None:
        return None
    return converted


def message_to_chat(message: dict[str, Any], *, created: int | None = None) -> dict[str, Any]:
    """The OpenAI ``chat.completion`` for an Anthropic Message (``created`` defaults to now)."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in message.get("content") or []:
        if block.get("type") == "text":
            texts.append(str(block.get("text", "")))
        elif block.get("type") == "tool_use":
            calls.append({"id": block.get("id"), "type": "function", "function": {
                "name": block.get("name"), "arguments": orjson.dumps(block.get("input") or {}).decode()}})
    reply: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None, "refusal": None}
    if calls:
        reply["tool_calls"] = calls
    return {
        "id": message.get("id"),
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": message.get("model"),
        "choices": [{"index": 0, "message": reply, "logprobs": None,
                     "finish_reason": FINISH_REASONS.get(str(message.get("stop_reason")), "stop")}],
        "usage": chat_usage(message.get("usage") or {}),
    }


def chat_usage(usage: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's usage for Anthropic's: cache reads and writes count as prompt tokens, reads also as cached."""
    cache_read = int(usage.get("cache_read_input_tokens") or 0)
    prompt = int(usage.get("input_tokens") or 0) + cache_read + int(usage.get("cache_creation_input_tokens") or 0)
    completion = int(usage.get("output_tokens") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cache_read}}


def openai_error(error: Any) -> dict[str, Any]:
    """OpenAI's envelope for an Anthropic error, ``{"type":"error","error":{"type","message"}}`` (or the inner
    object alone)."""
    inner = error.get("error") if isinstance(error, dict) else None
    inner = inner if isinstance(inner, dict) else error if isinstance(error, dict) else {}
    return error_envelope(str(inner.get("message") or "Anthropic reported an error"),
                          str(inner.get("type") or "api_error"))


def error_text(resp: Answer) -> str:
    """An error answer's body as OpenAI's envelope (a non-JSON body is wrapped as the OpenAI adapter does)."""
    try:
        parsed = orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict) and parsed.get("type") == "error":
        return orjson.dumps(openai_error(parsed)).decode()
    return json_object_text(resp)


def raise_for_status(resp: Answer) -> None:
    """:func:`~providers.base.raise_for_status` with Anthropic's ``request-id`` and its error bodies in OpenAI's
    envelope (529 ``overloaded_error`` is one of the retryable statuses)."""
    raise_for_openai_status(resp, request_id_header="request-id", error_text=error_text)


def messages_body(endpoint: str, body: bytes, *, stream: bool = False) -> bytes:
    """The Messages request for an OpenAI chat request's body; ``stream`` asks for server-sent events (the
    OpenAI request's own ``stream`` and ``stream_options`` are the caller's business, not Anthropic's)."""
    if endpoint != CHAT_ENDPOINT:
        raise refused(f"Anthropic providers serve {CHAT_ENDPOINT} only, not {endpoint}.", None,
                      "unsupported_endpoint")
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError:
        request = None
    if not isinstance(request, dict):
        raise refused("The request body is not a JSON object.", None, "invalid_json")
    if not stream:
        return orjson.dumps(chat_to_messages(request))
    request.pop("stream", None)
    request.pop("stream_options", None)
    return orjson.dumps({**chat_to_messages(request), "stream": True})


class AnthropicMessages:
    """Posts one OpenAI chat request to Anthropic's ``messages`` and answers a translated ``chat.completion``;
    same contract as :class:`~providers.openai.OpenAICompatible`."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def post(self, endpoint: str, body: bytes) -> UpstreamResponse:
        payload = messages_body(endpoint, body)
        resp = await post_json(self.client, "messages", payload, raise_for_status)
        try:
            chat = message_to_chat(json_body(resp))
        except (AttributeError, TypeError, ValueError):  # content or usage of the wrong shape
            raise invalid_answer("not an Anthropic message", resp.content, resp.status_code) from None
        limits = (int_header(resp.headers, "anthropic-ratelimit-requests-limit"),
                  int_header(resp.headers, "anthropic-ratelimit-tokens-limit"))
        return UpstreamResponse(resp.status_code, orjson.dumps(chat), chat, resp.headers.get("request-id"),
                                limits)
