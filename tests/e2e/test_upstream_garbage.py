"""Upstream garbage as an SDK user sees it: a 200 whose body is no valid response (an HTML page, cut-off JSON, a
JSON array, ``usage`` a string, fewer embeddings than inputs) is retried, and once the attempts run out the error
file says ``upstream_invalid_response`` and quotes what came back. The simulator sends the garbage on a marker."""

import pytest

from simulator import SimulatorServer
from simulator.garbage import (
    SIM_GARBAGE_ARRAY,
    SIM_GARBAGE_HTML,
    SIM_GARBAGE_SHORT,
    SIM_GARBAGE_TRUNCATED,
    SIM_GARBAGE_USAGE,
)
from tests.harness import MakeBroker, chat_line, embedding_line, read_jsonl, submit, wait_for

ATTEMPTS = 3
#: marker -> what the error message must quote of the answer
CHAT_GARBAGE = {
    SIM_GARBAGE_HTML: "<html><head><title>502 Bad Gateway",
    SIM_GARBAGE_TRUNCATED: '{"id":"chatcmpl-',
    SIM_GARBAGE_ARRAY: '[{"id":"chatcmpl-',
    SIM_GARBAGE_USAGE: "(usage is not an object); it began: '{\"id\":\"chatcmpl-",
}


@pytest.fixture
def errors_by_id(sim: SimulatorServer, make_broker: MakeBroker) -> dict[str, dict[str, str]]:
    """One batch of chat lines (one per garbage kind and a good one) and one embeddings line asking for two
    vectors that gets one; the error lines by custom_id."""
    client = make_broker(max_attempts=ATTEMPTS).client()
    chat = submit(client, [chat_line(0), *(chat_line(i + 1, f"hi {m}") for i, m in enumerate(CHAT_GARBAGE))])
    embeddings = submit(client, [embedding_line(0, ["one", f"two {SIM_GARBAGE_SHORT}"])], endpoint="/v1/embeddings")
    lines: dict[str, dict[str, str]] = {}
    for batch_id, total in ((chat.id, 1 + len(CHAT_GARBAGE)), (embeddings.id, 1)):
        batch = wait_for(client, batch_id, timeout=60)
        assert batch.status == "completed" and batch.request_counts is not None
        assert batch.request_counts.total == total
        for line in read_jsonl(client, batch.error_file_id):
            assert line["response"] is None, line  # no made-up HTTP answer: the failure is ours to explain
            lines[line["custom_id"]] = line["error"]
    assert sim.stats.successes == 1 + ATTEMPTS * (len(CHAT_GARBAGE) + 1)  # each garbage line tried every time
    return lines


def test_garbage_answers_end_as_upstream_invalid_response_quoting_the_body(
        errors_by_id: dict[str, dict[str, str]]) -> None:
    assert "req-0" not in errors_by_id  # the good line succeeded
    for i, quoted in enumerate(CHAT_GARBAGE.values(), start=1):
        error = errors_by_id[f"req-{i}"]
        assert error["code"] == "upstream_invalid_response", error
        assert quoted in error["message"], error
    short = errors_by_id["emb-0"]
    assert short["code"] == "upstream_invalid_response"
    assert "1 embeddings for 2 inputs" in short["message"] and '"object":"list"' in short["message"], short
