"""The official openai SDK, unchanged, runs batches through the broker against the simulator."""

from schemas.batches import BatchOutputLine
from tests.harness import (
    EmbeddedBroker,
    chat_line,
    embedding_line,
    read_jsonl,
    submit,
    wait_for,
)


def _assert_every_line_once(client, batch, n):  # type: ignore[no-untyped-def]
    out = read_jsonl(client, batch.output_file_id)
    err = read_jsonl(client, batch.error_file_id)
    ids = [line["custom_id"] for line in out + err]
    assert len(ids) == n and len(set(ids)) == n
    for line in out + err:  # OpenAI's BatchRequestOutput shape, key for key
        BatchOutputLine.model_validate(line)
        assert set(line) == {"id", "custom_id", "response", "error"}
        assert (line["response"] is None) != (line["error"] is None) or line["response"]["status_code"] >= 400
        if line["response"] is not None:
            assert set(line["response"]) == {"status_code", "request_id", "body"}
    return out, err


def test_chat_batch_of_1000_lines_completes(broker: EmbeddedBroker) -> None:
    client = broker.client()
    batch = submit(client, [chat_line(i) for i in range(1000)])
    assert batch.status == "validating"
    batch = wait_for(client, batch.id)
    assert batch.status == "completed"
    assert batch.request_counts is not None
    assert (batch.request_counts.total, batch.request_counts.completed, batch.request_counts.failed) == (1000, 1000, 0)
    out, err = _assert_every_line_once(client, batch, 1000)
    assert err == [] and batch.error_file_id is None
    first = next(line for line in out if line["custom_id"] == "req-7")
    assert first["response"]["status_code"] == 200
    assert first["response"]["body"]["object"] == "chat.completion"
    assert first["id"].startswith("batch_req_") and first["error"] is None
    usage = sum(line["response"]["body"]["usage"]["total_tokens"] for line in out)
    assert batch.usage is not None and batch.usage.total_tokens == usage > 0
    assert batch.in_progress_at and batch.finalizing_at and batch.completed_at


def test_embeddings_batch_of_1000_lines_is_packed_and_completes(broker: EmbeddedBroker) -> None:
    client = broker.client()
    lines = [embedding_line(i, [f"a {i}", f"b {i}"] if i % 10 == 0 else None) for i in range(1000)]
    batch = wait_for(client, submit(client, lines, endpoint="/v1/embeddings").id)
    assert batch.status == "completed"
    out, _ = _assert_every_line_once(client, batch, 1000)
    by_id = {line["custom_id"]: line["response"]["body"] for line in out}
    assert [d["index"] for d in by_id["emb-10"]["data"]] == [0, 1]
    assert len(by_id["emb-11"]["data"]) == 1 and len(by_id["emb-11"]["data"][0]["embedding"]) == 64
    # packing: far fewer upstream calls than lines
    assert broker_sim_calls(broker, "/v1/embeddings") < 100
    assert batch.usage is not None
    assert batch.usage.input_tokens == sum(b["usage"]["prompt_tokens"] for b in by_id.values()) > 0


def broker_sim_calls(broker: EmbeddedBroker, endpoint: str) -> int:
    import httpx

    base = broker.catalogue.providers["sim"].base_url.removesuffix("/v1")
    stats = httpx.get(base + "/_sim/stats").json()
    return int(stats["by_endpoint"].get(endpoint, 0))
