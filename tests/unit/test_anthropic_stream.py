"""Anthropic's stream events told as OpenAI chunks: what an ``error`` event does before and after the first chunk."""

import orjson
import pytest

from broker.errors import RetryableUpstream, TerminalUpstream
from providers.anthropic_stream import MessagesRelay

START = {"type": "message_start", "message": {"id": "msg_1", "model": "claude", "usage": {"input_tokens": 7}}}
OVERLOADED = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}


def event(payload: dict[str, object]) -> bytes:
    return b"event: " + str(payload["type"]).encode() + b"\r\ndata: " + orjson.dumps(payload) + b"\r\n\r\n"


def test_an_error_before_the_first_chunk_is_raised_for_the_next_deployment() -> None:
    relay = MessagesRelay(keep_usage_chunk=False)
    assert relay.feed(event({"type": "ping"})) == b""
    with pytest.raises(RetryableUpstream) as caught:
        relay.feed(event(OVERLOADED))
    assert caught.value.status == 529 and "Overloaded" in (caught.value.body or "")
    with pytest.raises(TerminalUpstream):
        MessagesRelay(False).feed(event({"type": "error", "error": {"type": "invalid_request_error",
                                                                      "message": "bad"}}))


def test_an_error_after_the_first_chunk_is_told_in_openais_shape_and_ends_the_stream() -> None:
    relay = MessagesRelay(keep_usage_chunk=True)
    first = relay.feed(event(START)[:30])
    assert first == b"" and b'"role":"assistant"' in relay.feed(event(START)[30:])
    told = relay.feed(event(OVERLOADED) + event({"type": "message_stop"}))
    assert orjson.loads(told.removeprefix(b"data: "))["error"] == {
        "message": "Overloaded", "type": "overloaded_error", "param": None, "code": None}
    assert isinstance(relay.failure, RetryableUpstream) and relay.usage is not None
    assert relay.usage["prompt_tokens"] == 7


def test_a_stream_cut_before_message_stop_is_a_failure() -> None:
    relay = MessagesRelay(keep_usage_chunk=False)
    relay.feed(event(START))
    assert relay.rest() == b"" and isinstance(relay.failure, RetryableUpstream)
