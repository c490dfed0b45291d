"""Files in an S3-compatible bucket (moto's server on loopback): uploads, downloads and batch results go through
the bucket, in parts, and the broker's own folder keeps no file bytes."""

import hashlib
import os

import httpx
import obstore
from obstore.store import S3Store

from broker.storage import WRITE_PART_BYTES
from simulator import SimulatorServer
from tests.harness import EmbeddedBroker, MakeBroker, chat_line, jsonl, read_jsonl, submit, wait_for


def _objects(url: str) -> dict[str, int]:
    """What the bucket holds under the store's prefix: key -> size."""
    return {o["path"]: o["size"] for page in obstore.list(S3Store.from_url(url)) for o in page}


def test_a_big_file_goes_up_in_parts_and_comes_back_whole(make_broker: MakeBroker, s3_url: str) -> None:
    broker: EmbeddedBroker = make_broker(workers=False, planner=False, storage_url=s3_url)
    client = broker.client()
    content = os.urandom(WRITE_PART_BYTES * 2 + 12345)  # three parts
    uploaded = client.files.create(file=("big.jsonl", content), purpose="batch")
    assert uploaded.bytes == len(content)
    assert _objects(s3_url) == {uploaded.id: len(content)}
    assert list(broker.settings.files_dir.iterdir()) == []  # the bytes are in the bucket only

    with client.files.with_streaming_response.content(uploaded.id) as response:
        assert response.headers["content-length"] == str(len(content))
        digest = hashlib.sha256()
        for chunk in response.iter_bytes():
            digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(content).hexdigest()

    assert client.files.delete(uploaded.id).deleted
    assert _objects(s3_url) == {}


def test_a_refused_upload_leaves_the_bucket_empty(make_broker: MakeBroker, s3_url: str) -> None:
    broker: EmbeddedBroker = make_broker(workers=False, planner=False, storage_url=s3_url,
                                         max_upload_bytes=WRITE_PART_BYTES + 10)
    resp = httpx.post(f"{broker.base_url}/files", headers={"Authorization": f"Bearer {broker.key}"},
                      files={"file": ("big.jsonl", b"x" * (WRITE_PART_BYTES * 2))}, data={"purpose": "batch"})
    assert resp.status_code == 413 and resp.json()["error"]["code"] == "file_too_large"
    assert _objects(s3_url) == {}


def test_a_batch_on_object_storage_reads_its_input_and_writes_results_there_with_partial_reads(
        make_broker: MakeBroker, sim: SimulatorServer, s3_url: str) -> None:
    sim.config.latency_median_ms, sim.config.latency_sigma = 30, 0.2
    broker: EmbeddedBroker = make_broker(provider={"max_concurrency": 4}, storage_url=s3_url)
    client = broker.client()
    lines = [chat_line(i) for i in range(120)] + ['{"custom_id": "broken"']
    batch = submit(client, [chat_line(i) for i in range(120)])
    running = wait_for(client, batch.id, until=lambda b: b.status == "in_progress" and bool(
        b.request_counts and b.request_counts.completed))
    partial = httpx.get(f"{broker.base_url}/files/{running.output_file_id}/content",
                        headers={"Authorization": f"Bearer {broker.key}"})
    assert partial.headers["x-file-complete"] == "false" and partial.content.count(b"\n") >= 1

    done = wait_for(client, batch.id)
    assert done.status == "completed" and done.output_file_id == running.output_file_id
    out = read_jsonl(client, done.output_file_id)
    assert sorted(line["custom_id"] for line in out) == sorted(f"req-{i}" for i in range(120))
    assert partial.content == client.files.content(done.output_file_id).content[:len(partial.content)]
    stored = _objects(s3_url)
    assert set(stored) == {batch.input_file_id, done.output_file_id}
    assert stored[batch.input_file_id] == len(jsonl(lines[:120]))
    assert [p.name for p in broker.settings.files_dir.iterdir()] == []  # no temporary file left behind

    invalid = wait_for(client, submit(client, lines).id)  # validation reads the input from the bucket too
    assert invalid.status == "failed" and invalid.errors and invalid.errors.data[0].line == 121
