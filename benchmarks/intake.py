"""Intake: a 50,000-line chat JSONL uploaded and turned ``in_progress``, on SQLite and on PostgreSQL.

Measures what a user waits for: upload (multipart, streamed to disk) + create + validation of every line +
bulk insert of one row per line, until the batch reports ``in_progress``. Target: <= 2 s on a 2-core machine.
Run: ``python benchmarks/intake.py [--lines 50000] [--postgres postgresql://postgres@127.0.0.1/test]``.
"""

import argparse
import os
import tempfile
import time

import openai

from benchmarks._common import broker_api, chat_lines, jsonl, postgres_database, print_table

TARGET_SECONDS = 2.0  #: issue #2


def run_intake(base_url: str, payload: bytes, n: int) -> tuple[float, float]:
    client = openai.OpenAI(base_url=base_url, api_key="unused")
    start = time.perf_counter()
    upload = client.files.create(file=("intake.jsonl", payload), purpose="batch")
    uploaded = time.perf_counter() - start
    batch = client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h")
    while batch.status == "validating":
        time.sleep(0.01)
        batch = client.batches.retrieve(batch.id)
    total = time.perf_counter() - start
    assert batch.status == "in_progress" and batch.request_counts and batch.request_counts.total == n, batch
    return uploaded, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--postgres", default=os.environ.get("BROKER_TEST_DATABASE_URL",
                                                             "postgresql://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args()
    payload = jsonl(chat_lines(args.lines)).getvalue()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        targets = [("SQLite", f"sqlite:///{tmp}/intake.db")]
        with postgres_database(args.postgres) as pg_url:
            targets.append(("PostgreSQL", pg_url))
            for name, url in targets:
                with broker_api(url, os.path.join(tmp, name)) as base_url:
                    uploaded, total = run_intake(base_url, payload, args.lines)
                rows.append([name, f"{len(payload) / 1e6:.1f} MB", f"{uploaded:.2f}", f"{total:.2f}",
                             f"{args.lines / total:,.0f}", f"<= {TARGET_SECONDS}",
                             "yes" if total <= TARGET_SECONDS else "NO"])
    print_table(f"Intake of {args.lines:,} chat lines (upload -> in_progress)",
                ["database", "file", "upload s", "to in_progress s", "lines/s", "target s", "met"], rows)


if __name__ == "__main__":
    main()
