"""OpenAI chat <-> Anthropic Messages translation, and the real-time adapter against the real simulator
(conftest's ``sim``, a fresh server per test; MockTransport only for a 529 and odd bodies)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import orjson
import pytest

from broker.catalogue import ProviderConfig
from broker.errors import RetryableUpstream, TerminalUpstream
from providers.anthropic import (
    DEFAULT_MAX_TOKENS,
    AnthropicMessages,
    chat_to_messages,
    make_anthropic_client,
    message_to_chat,
)
from providers.base import usage_of
from simulator import SimulatorServer

CHAT_URL = "/v1/chat/completions"
T = TypeVar("T")
PNG = "data:image/png;base64,iVBORw0KGgo="
WEATHER = {"type": "function", "function": {"name": "weather", "description": "Weather of a city", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def chat(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-5", "messages": list(messages) or [{"role": "user", "content": "hi"}], **extra}


def run(base_url: str, scenario: Callable[[AnthropicMessages], Awaitable[T]], timeout: float = 5.0) -> T:
    async def main() -> T:
        provider = ProviderConfig(name="claude", kind="anthropic", base_url=base_url, timeout_seconds=timeout)
        async with make_anthropic_client(provider) as client:
            return await scenario(AnthropicMessages(client))

    return asyncio.run(main())


def post(base_url: str, body: dict[str, Any], endpoint: str = CHAT_URL, timeout: float = 5.0) -> Any:
    return run(base_url, lambda adapter: adapter.post(endpoint, orjson.dumps(body)), timeout)


def test_system_messages_and_turns() -> None:
    request = chat(
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
        {"role": "user", "content": "one"},
        {"role": "user", "content": [{"type": "text", "text": "two"}]},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "three"},
        temperature=0.2, top_p=0.9, user="u-1", seed=7, store=True,
    )
    converted = chat_to_messages(request)
    assert converted["system"] == "Be brief.\n\nAnswer in French."
    assert converted["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
        {"role": "user", "content": "three"},
    ]
    assert converted["model"] == "claude-sonnet-4-5" and converted["max_tokens"] == DEFAULT_MAX_TOKENS
    assert (converted["temperature"], converted["top_p"]) == (0.2, 0.9)
    assert converted["metadata"] == {"user_id": "u-1"} and "seed" not in converted and "store" not in converted


def test_max_tokens_and_stop() -> None:
    assert chat_to_messages(chat(max_tokens=50))["max_tokens"] == 50
    assert chat_to_messages(chat(max_tokens=50, max_completion_tokens=20))["max_tokens"] == 20
    assert chat_to_messages(chat(stop="END"))["stop_sequences"] == ["END"]
    assert chat_to_messages(chat(stop=["a", "b"]))["stop_sequences"] == ["a", "b"]
    assert "stop_sequences" not in chat_to_messages(chat(stop=None))


def test_images() -> None:
    parts = [{"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": PNG}},
             {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}}]
    blocks = chat_to_messages(chat({"role": "user", "content": parts}))["messages"][0]["content"]
    assert blocks[1] == {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                     "data": "iVBORw0KGgo="}}
    assert blocks[2] == {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
    bad = [{"type": "image_url", "image_url": {"url": "ftp://example.com/cat.jpg"}}]
    with pytest.raises(TerminalUpstream) as refused:
        chat_to_messages(chat({"role": "user", "content": bad}))
    assert refused.value.status == 400
    assert orjson.loads(refused.value.body or "")["error"]["param"] == "messages[0].content[0].image_url"
    with pytest.raises(TerminalUpstream, match="input_audio"):
        chat_to_messages(chat({"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}))


def test_tools_calls_and_results() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}
    call2 = {"id": "call_2", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}
    request = chat(
        {"role": "user", "content": "Weather in Paris and Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [call, call2]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "rain"}]},
        {"role": "user", "content": "Thanks, so?"},
        tools=[WEATHER], tool_choice="required", parallel_tool_calls=False,
    )
    converted = chat_to_messages(request)
    assert converted["tools"] == [{"name": "weather", "description": "Weather of a city",
                                   "input_schema": WEATHER["function"]["parameters"]}]  # type: ignore[index]
    assert converted["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    turns = converted["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert turns[1]["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_2", "name": "weather", "input": {"city": "Oslo"}}]
    assert turns[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"},
        {"type": "tool_result", "tool_use_id": "call_2", "content": "rain"},
        {"type": "text", "text": "Thanks, so?"}]
    choices = {"auto": {"type": "auto"}, "none": {"type": "none"},
               "named": ({"type": "function", "function": {"name": "weather"}}, {"type": "tool", "name": "weather"})}
    for given, expected in choices.items():
        choice, wanted = expected if isinstance(expected, tuple) else (given, expected)
        assert chat_to_messages(chat(tools=[WEATHER], tool_choice=choice))["tool_choice"] == wanted
    assert "tool_choice" not in chat_to_messages(chat(tools=[WEATHER]))
    assert "tool_choice" not in chat_to_messages(chat(tool_choice="auto"))
    with pytest.raises(TerminalUpstream, match="Only function tools"):
        chat_to_messages(chat(tools=[{"type": "web_search"}]))
    broken = {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{no"}}]}
    with pytest.raises(TerminalUpstream, match="JSON object"):
        chat_to_messages(chat(broken))


@pytest.mark.parametrize(("field", "value"), [
    ("n", 2), ("response_format", {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}),
    ("response_format", {"type": "json_object"}), ("logprobs", True), ("top_logprobs", 3),
    ("presence_penalty", 0.5), ("logit_bias", {"50256": -100}), ("stream", True), ("audio", {"voice": "alloy"}),
    ("reasoning_effort", "high"),
])
def test_unsupported_parameters_are_refused_with_openai_errors(field: str, value: Any) -> None:
    with pytest.raises(TerminalUpstream) as refused:
        chat_to_messages(chat(**{field: value}))
    assert refused.value.status == 400 and refused.value.code == "unsupported_parameter"
    error = orjson.loads(refused.value.body or "")["error"]
    assert error == {"message": error["message"], "type": "invalid_request_error", "param": field,
                     "code": "unsupported_parameter"}


def test_harmless_values_of_unsupported_parameters_pass() -> None:
    converted = chat_to_messages(chat(n=1, logprobs=False, response_format={"type": "text"}, presence_penalty=0,
                                      frequency_penalty=0.0, stream=False, logit_bias={}))
    assert set(converted) == {"model", "messages", "max_tokens"}


def test_message_to_chat_maps_content_finish_and_usage() -> None:
    message = {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [{"type": "thinking", "thinking": "hmm"}, {"type": "text", "text": "Let me check. "},
                    {"type": "text", "text": "One moment."},
                    {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}],
        "stop_reason": "tool_use", "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 7, "cache_read_input_tokens": 100,
                  "cache_creation_input_tokens": 5},
    }
    converted = message_to_chat(message, created=1700000000)
    assert converted["object"] == "chat.completion" and converted["created"] == 1700000000
    choice = converted["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Let me check. One moment."
    assert choice["message"]["tool_calls"] == [{"id": "toolu_1", "type": "function", "function": {
        "name": "weather", "arguments": '{"city":"Paris"}'}}]
    assert converted["usage"] == {"prompt_tokens": 115, "completion_tokens": 7, "total_tokens": 122,
                                  "prompt_tokens_details": {"cached_tokens": 100}}
    usage = usage_of(converted)
    assert (usage.input_tokens, usage.output_tokens, usage.cached_tokens) == (115, 7, 100)
    for reason, finish in [("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
                           ("refusal", "content_filter"), (None, "stop")]:
        assert message_to_chat({**message, "stop_reason": reason})["choices"][0]["finish_reason"] == finish
    empty = message_to_chat({**message, "content": []})["choices"][0]["message"]
    assert empty["content"] is None and "tool_calls" not in empty


def test_client_sends_anthropic_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_ANTHROPIC_KEY", "sk-ant-test")
    provider = ProviderConfig(name="claude", kind="anthropic", base_url="https://api.anthropic.com/v1",
                              api_key_env="TEST_ANTHROPIC_KEY")
    client = make_anthropic_client(provider)
    assert client.headers["x-api-key"] == "sk-ant-test" and client.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in client.headers and str(client.base_url) == "https://api.anthropic.com/v1/"
    asyncio.run(client.aclose())


def test_realtime_call_through_the_simulator(sim: SimulatorServer) -> None:
    sim.app.apply_config({"rpm": 100, "tpm": 100_000})
    resp = post(sim.base_url, chat({"role": "system", "content": "Be brief."},
                                   {"role": "user", "content": "Tell me about queues"}))
    assert resp.status == 200 and resp.request_id.startswith("req_") and resp.header_limits == (100, 100_000)
    assert orjson.loads(resp.text) == resp.json
    body = resp.json
    assert body["object"] == "chat.completion" and body["id"].startswith("msg_")
    assert body["choices"][0]["message"]["content"].endswith("Tell me about queues")
    assert body["choices"][0]["finish_reason"] == "stop"
    usage = usage_of(body)
    assert usage.input_tokens > 0 and usage.output_tokens > 0
    assert (sim.stats.prompt_tokens, sim.stats.completion_tokens) == (usage.input_tokens, usage.output_tokens)
    assert sim.stats.by_endpoint == {"/v1/messages": 1}

    short = post(sim.base_url, chat(max_completion_tokens=2)).json
    assert short["choices"][0]["finish_reason"] == "length" and short["usage"]["completion_tokens"] == 2
    stopped = post(sim.base_url, chat({"role": "user", "content": "tell me about queues"}, stop="about")).json
    assert stopped["choices"][0]["finish_reason"] == "stop"
    assert "about" not in stopped["choices"][0]["message"]["content"]
    called = post(sim.base_url, chat(tools=[WEATHER], tool_choice={"type": "function",
                                                                  "function": {"name": "weather"}})).json
    assert called["choices"][0]["finish_reason"] == "tool_calls"
    call = called["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["name"] == "weather" and orjson.loads(call["function"]["arguments"]) == {
        "city": "simulated"}


def test_realtime_errors_are_classified(sim: SimulatorServer) -> None:
    sim.app.apply_config({"rpm": 1})
    post(sim.base_url, chat())
    with pytest.raises(RetryableUpstream) as limited:
        post(sim.base_url, chat())
    assert limited.value.status == 429 and limited.value.delay is not None and limited.value.delay >= 1
    assert limited.value.request_id is not None
    assert orjson.loads(limited.value.body or "")["error"]["type"] == "rate_limit_error"

    sim.app.apply_config({"rpm": None, "error_rate": 1.0, "error_kinds": ["503"]})
    with pytest.raises(RetryableUpstream) as overloaded:
        post(sim.base_url, chat())
    assert overloaded.value.status == 503
    assert orjson.loads(overloaded.value.body or "")["error"]["type"] == "overloaded_error"

    sim.app.apply_config({"error_kinds": ["timeout"], "hang_seconds": 2.0})
    with pytest.raises(RetryableUpstream) as slow:
        post(sim.base_url, chat(), timeout=0.2)
    assert slow.value.code == "upstream_timeout"

    sim.app.apply_config({"error_rate": 0.0})
    with pytest.raises(TerminalUpstream) as invalid:
        post(sim.base_url, chat({"role": "user", "content": "__sim_error_400__"}))
    assert invalid.value.status == 400
    assert orjson.loads(invalid.value.body or "")["error"]["type"] == "invalid_request_error"

    before = sim.stats.requests
    with pytest.raises(TerminalUpstream) as endpoint:
        post(sim.base_url, {"model": "claude-sonnet-4-5", "input": "hi"}, endpoint="/v1/embeddings")
    assert endpoint.value.status == 400 and "/v1/chat/completions" in endpoint.value.message
    with pytest.raises(TerminalUpstream) as unsupported:
        post(sim.base_url, chat(n=3))
    assert unsupported.value.code == "unsupported_parameter" and sim.stats.requests == before


def test_overloaded_529_is_retryable_and_odd_bodies_are_wrapped() -> None:
    answers = iter([
        httpx.Response(529, headers={"retry-after": "3", "request-id": "req_9"},
                       json={"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        httpx.Response(502, text="<html>bad gateway</html>"),
        httpx.Response(200, text="not json"),
        httpx.Response(401, json={"type": "error", "error": {"type": "authentication_error", "message": "bad key"}}),
    ])

    async def main() -> list[Exception]:
        transport = httpx.MockTransport(lambda request: next(answers))
        async with httpx.AsyncClient(base_url="http://upstream/v1/", transport=transport) as client:
            adapter = AnthropicMessages(client)
            calls = [adapter.post(CHAT_URL, orjson.dumps(chat())) for _ in range(4)]
            return [await _raised(call) for call in calls]

    overloaded, gateway, garbage, unauthorized = asyncio.run(main())
    assert isinstance(overloaded, RetryableUpstream) and overloaded.status == 529 and overloaded.delay == 3.0
    assert overloaded.request_id == "req_9"
    assert orjson.loads(overloaded.body or "") == {"error": {"message": "Overloaded", "type": "overloaded_error",
                                                             "param": None, "code": None}}
    assert isinstance(gateway, RetryableUpstream) and "bad gateway" in (gateway.body or "")
    assert isinstance(garbage, RetryableUpstream) and garbage.code == "upstream_invalid_response"
    assert isinstance(unauthorized, TerminalUpstream) and unauthorized.status == 401
    assert orjson.loads(unauthorized.body or "")["error"]["type"] == "authentication_error"


async def _raised(call: Awaitable[Any]) -> Exception:
    try:
        await call
    except Exception as exc:
        return exc
    raise AssertionError("the call did not raise")
