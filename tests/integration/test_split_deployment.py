"""The split deployment as on separate hosts: two API processes and two workers, each with a data folder of its
own, sharing only PostgreSQL, Redis and the bucket (moto's S3 server): upload through one API, download the
results through the other, every line exactly once."""

import os
from pathlib import Path

import obstore
import openai
import pytest
from obstore.store import S3Store

from cli.local_cluster import LocalCluster
from simulator import SimulatorServer
from tests.harness import chat_line, read_jsonl, submit, wait_for

pytestmark = pytest.mark.integration
LINES = 5000


def test_two_apis_and_two_workers_sharing_only_database_queue_and_bucket(
        tmp_path: Path, pg_url: str, redis_url: str, s3_url: str, sim: SimulatorServer) -> None:
    providers = (f'[providers.sim]\nbase_url = "{sim.base_url}"\nmax_concurrency = 64\n'
                 '[providers.sim.models]\n"gpt-4o-mini" = { input = 0.15, output = 0.6 }\n')
    env = {"BROKER_STORAGE_URL": s3_url, "BROKER_PLANNER_INTERVAL": "0.1"}
    with LocalCluster(tmp_path, pg_url, redis_url, providers, workers=2, worker_threads=8, env=env, apis=2,
                      separate_data=True) as c:
        key = c.run("keys", "create", "--project", "split").splitlines()[-1]
        first, second = (openai.OpenAI(base_url=url, api_key=key, max_retries=0) for url in c.base_urls)
        batch = submit(first, [chat_line(i) for i in range(LINES)])
        try:
            done = wait_for(second, batch.id, timeout=300)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{c.logs()}") from None
        assert done.status == "completed", c.logs()
        assert done.request_counts is not None and done.request_counts.completed == LINES
        out = read_jsonl(second, done.output_file_id)
        assert sorted(line["custom_id"] for line in out) == sorted(f"req-{i}" for i in range(LINES))
        assert second.files.content(batch.input_file_id).content == first.files.content(batch.input_file_id).content

        objects = {o["path"] for page in obstore.list(S3Store.from_url(s3_url)) for o in page}
        assert {batch.input_file_id, done.output_file_id} <= objects
        for name in c.procs:  # no process kept file bytes of its own
            files = c.data_dir(name) / "files"
            assert not files.exists() or os.listdir(files) == [], f"{name} holds {os.listdir(files)}"
