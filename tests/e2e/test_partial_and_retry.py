"""Reading a running batch's output as it grows, and re-running only the failed lines of a finished batch."""

import httpx
from openai.types import Batch

from simulator import SimulatorServer
from tests.harness import EmbeddedBroker, chat_line, read_jsonl, submit, wait_for


def test_partial_output_reads_with_offset_while_running_and_matches_the_final_file(
    make_broker, sim: SimulatorServer,  # type: ignore[no-untyped-def]
) -> None:
    sim.config.latency_median_ms, sim.config.latency_sigma = 30, 0.2
    broker: EmbeddedBroker = make_broker(provider={"max_concurrency": 4})
    client = broker.client()
    batch = wait_for(client, submit(client, [chat_line(i) for i in range(200)]).id, statuses=("in_progress",))
    assert batch.output_file_id is not None  # known from the start
    headers = {"Authorization": f"Bearer {broker.key}"}
    url = f"{broker.base_url}/files/{batch.output_file_id}/content"
    collected: list[bytes] = []
    partial_reads = 0
    while True:
        resp = httpx.get(url, params={"offset": len(collected)}, headers=headers)
        assert resp.status_code == 200
        lines = resp.content.splitlines(keepends=True)
        collected += lines
        assert int(resp.headers["x-last-line"]) == len(collected)
        if resp.headers["x-file-complete"] == "true":
            break
        partial_reads += 1
    assert partial_reads >= 2, "the batch finished before its output could be read in parts"
    final = wait_for(client, batch.id)
    assert final.status == "completed" and final.output_file_id == batch.output_file_id
    full = client.files.content(batch.output_file_id).content
    assert b"".join(collected) == full  # resuming by offset never skipped nor repeated a line
    assert len(full.splitlines()) == 200


def test_retry_reruns_only_the_failed_lines_in_place(make_broker, sim: SimulatorServer) -> None:  # type: ignore[no-untyped-def]
    broker: EmbeddedBroker = make_broker(max_attempts=1)
    client = broker.client()
    sim.config.error_rate, sim.config.error_kinds = 1.0, ("500",)
    first = wait_for(client, submit(client, [chat_line(i) for i in range(30)]).id)
    assert first.status == "completed" and first.request_counts and first.request_counts.failed == 30
    assert len(read_jsonl(client, first.error_file_id)) == 30
    calls_before = sim.stats.requests

    sim.config.error_rate = 0.0
    retried = client.post(f"/batches/{first.id}/retry", cast_to=Batch)
    assert retried.status == "in_progress" and retried.error_file_id is None
    done = wait_for(client, first.id)
    assert done.status == "completed"
    assert done.request_counts and (done.request_counts.completed, done.request_counts.failed) == (30, 0)
    assert done.output_file_id == first.output_file_id and done.error_file_id is None
    out = read_jsonl(client, done.output_file_id)
    assert sorted(line["custom_id"] for line in out) == sorted(f"req-{i}" for i in range(30))
    assert sim.stats.requests - calls_before == 30  # only the failed lines ran again

    again = httpx.post(f"{broker.base_url}/batches/{first.id}/retry", headers={"Authorization": f"Bearer {broker.key}"})
    assert again.status_code == 400 and again.json()["error"]["code"] == "batch_not_retryable"
