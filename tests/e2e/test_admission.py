"""Admission: a batch gets an estimated completion time; one that cannot meet its window is flagged or refused."""

import time

import openai
import pytest

from tests.harness import EmbeddedBroker, chat_line, submit, upload


@pytest.fixture
def slow_broker(make_broker) -> EmbeddedBroker:  # type: ignore[no-untyped-def]
    return make_broker(provider={"rpm": 60, "max_concurrency": 1}, min_window_seconds=1)  # one line a second


def test_a_feasible_batch_gets_an_estimate_inside_its_window(slow_broker: EmbeddedBroker) -> None:
    client = slow_broker.client()
    before = int(time.time())
    batch = submit(client, [chat_line(i) for i in range(30)])
    extra = batch.model_extra or {}
    assert before + 29 <= extra["estimated_completion_at"] <= before + 32  # 30 lines at 1 line/s
    assert extra["at_risk"] is False


def test_an_infeasible_batch_is_accepted_but_flagged(slow_broker: EmbeddedBroker) -> None:
    client = slow_broker.client()
    batch = submit(client, [chat_line(i) for i in range(100)], completion_window="1m")
    extra = batch.model_extra or {}
    assert batch.status == "validating" and extra["at_risk"] is True
    assert extra["estimated_completion_at"] > batch.expires_at  # type: ignore[operator]


def test_strict_admission_refuses_with_the_earliest_feasible_window(slow_broker: EmbeddedBroker) -> None:
    client = slow_broker.client()
    file_id = upload(client, [chat_line(i) for i in range(100)])
    with pytest.raises(openai.RateLimitError) as refused:
        client.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="1m",  # type: ignore[arg-type]
                              extra_body={"admission": "strict"})
    error = refused.value.body
    assert isinstance(error, dict)
    assert error["code"] == "window_infeasible" and error["param"] == "completion_window"
    assert "earliest feasible completion_window is 2m" in error["message"]
    assert client.batches.list().data == []  # nothing was created
    ok = client.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="2m",  # type: ignore[arg-type]
                               extra_body={"admission": "strict"})
    assert ok.status == "validating"
