"""Streamed chat on an Anthropic upstream through the official SDK: the broker streams from Anthropic's Messages
events as they come (the simulator speaks Anthropic's stream), with the text, tool calls and usage of the
non-streamed answer, and falls back to the next deployment before the first byte."""

import time
from typing import Any

import orjson

from simulator import SimulatorServer
from tests.e2e.conftest import StartBroker
from tests.e2e.test_anthropic import PUBLIC, anthropic

MESSAGES = [{"role": "user", "content": "Stream me a few words about the gateway"}]
WEATHER = [{"type": "function", "function": {"name": "weather", "description": "The weather in a city",
                                             "parameters": {"type": "object", "required": ["city", "days"],
                                                            "properties": {"city": {"type": "string"},
                                                                           "days": {"type": "integer"}}}}}]


def _usage_requests(report: Any) -> int:
    return sum(row["requests"] for row in report["data"] if row["route"] == "interactive")


def test_anthropic_chat_streams_as_the_upstream_speaks(start_broker: StartBroker, sim: SimulatorServer) -> None:
    broker = start_broker(anthropic(sim))
    client = broker.client()
    whole = client.chat.completions.create(model=PUBLIC, messages=MESSAGES)  # type: ignore[arg-type]
    sim.app.apply_config({"stream_delay_ms": 100})  # Anthropic's events come one word at a time
    chunks, open_at_first = [], None
    for chunk in client.chat.completions.create(model=PUBLIC, messages=MESSAGES, stream=True,  # type: ignore[arg-type]
                                                stream_options={"include_usage": True}):
        if open_at_first is None:
            open_at_first = sim.stats.streams_open
        chunks.append(chunk)
    sim.app.apply_config({"stream_delay_ms": 0})
    assert open_at_first == 1, "the first chunk reached the client while the upstream was still streaming"
    assert sim.stats.streams_open == 0 and sim.stats.by_endpoint["/v1/messages"] == 2
    content = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(content) == whole.choices[0].message.content and len(content) > 3, content
    assert chunks[0].choices[0].delta.role == "assistant" and {c.id for c in chunks} == {chunks[0].id}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and whole.usage is not None
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1])
    plain = list(client.chat.completions.create(model=PUBLIC, messages=MESSAGES, stream=True))  # type: ignore[arg-type]
    assert all(c.choices for c in plain), "no usage chunk unless asked for"
    deadline = time.monotonic() + 10  # an ended call's usage is written with its slot's release, just after
    while _usage_requests(report := client.get("/usage", cast_to=object)) != 3:
        assert time.monotonic() < deadline, report
        time.sleep(0.05)
    rows = [r for r in report["data"] if r["route"] == "interactive"]  # type: ignore[index]
    assert sum(r["output_tokens"] for r in rows) == 3 * whole.usage.completion_tokens


def test_anthropic_streams_tool_calls(start_broker: StartBroker, sim: SimulatorServer) -> None:
    broker = start_broker(anthropic(sim))
    client = broker.client()
    ask: dict[str, Any] = {"model": PUBLIC, "messages": MESSAGES, "tools": WEATHER, "tool_choice": "required"}
    whole = client.chat.completions.create(**ask)
    called = whole.choices[0].message.tool_calls
    assert called and whole.choices[0].finish_reason == "tool_calls"
    chunks = list(client.chat.completions.create(**ask, stream=True))
    calls = [call for c in chunks if c.choices for call in c.choices[0].delta.tool_calls or []]
    assert [c.index for c in calls if c.id] == [0] and str(calls[0].id).startswith("toolu_")
    assert calls[0].function is not None and calls[0].function.name == "weather"
    arguments = "".join(c.function.arguments or "" for c in calls if c.function)
    assert len(calls) > 2, "the arguments came in pieces, as Anthropic streams them"
    assert orjson.loads(arguments) == orjson.loads(called[0].function.arguments)  # type: ignore[union-attr]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_anthropic_stream_falls_back_before_the_first_byte(start_broker: StartBroker, sim: SimulatorServer,
                                                          other_sim: SimulatorServer) -> None:
    sim.app.apply_config({"error_rate": 1.0, "error_kinds": ["503"]})  # Anthropic's overloaded_error
    second = anthropic(other_sim).model_copy(update={"name": "anthropic-2"})
    broker = start_broker(anthropic(sim), second)
    client = broker.client()
    raw = client.chat.completions.with_raw_response.create(model=PUBLIC, messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    assert raw.headers["x-broker-provider"] == "anthropic-2"
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert text.startswith("Simulated reply")
    assert sim.stats.injected_errors == 1 and other_sim.stats.by_endpoint["/v1/messages"] == 1
