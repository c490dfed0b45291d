"""POST /v1/files/{id}/estimate: tokens and cost before running, within 15% of what the run then costs."""

import httpx
import pytest

from tests.harness import EmbeddedBroker, chat_line, read_jsonl, upload, wait_for


def _estimate(broker: EmbeddedBroker, file_id: str) -> dict:  # type: ignore[type-arg]
    resp = httpx.post(f"{broker.base_url}/files/{file_id}/estimate", headers={"Authorization": f"Bearer {broker.key}"})
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def _run(broker: EmbeddedBroker, file_id: str) -> tuple[float, list[dict]]:  # type: ignore[type-arg]
    client = broker.client()
    batch = wait_for(client, client.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions",
                                                   completion_window="24h").id)
    usage = [line["response"]["body"]["usage"] for line in read_jsonl(client, batch.output_file_id)]
    return (batch.model_extra or {})["cost_usd"], usage


def test_estimate_counts_input_exactly_and_learns_output_from_history(broker: EmbeddedBroker) -> None:
    client = broker.client()
    texts = [f"Summarise ticket {i}: the printer on floor {i % 7} jams when printing {i * 3} pages." for i in range(60)]
    first = upload(client, [chat_line(i, t) for i, t in enumerate(texts)])
    cold = _estimate(broker, first)
    assert cold["object"] == "file.estimate" and cold["lines"] == 60
    (model,) = cold["models"]
    assert model["model"] == "gpt-4o-mini" and model["routes"][0]["provider"] == "sim"
    _, usage = _run(broker, first)
    assert cold["input_tokens"] == sum(u["prompt_tokens"] for u in usage)  # counted as the provider counts

    later = [f"Summarise ticket {i}: the scanner in room {i % 5} stops after {i} sheets." for i in range(60, 140)]
    second = upload(client, [chat_line(i, t) for i, t in enumerate(later)])
    warm = _estimate(broker, second)
    actual_cost, _ = _run(broker, second)
    assert warm["cost_usd"] == pytest.approx(actual_cost, rel=0.15)


def test_estimate_is_scoped_to_the_project(broker: EmbeddedBroker) -> None:
    file_id = upload(broker.client(), [chat_line(1)])
    other = httpx.post(f"{broker.base_url}/files/{file_id}/estimate",
                       headers={"Authorization": f"Bearer {broker.new_key('other')}"})
    assert other.status_code == 404 and other.json()["error"]["type"] == "invalid_request_error"
