"""File storage: a big file streamed into and out of ``broker api`` on the local folder and on an S3-compatible
bucket, with the API process's peak RSS (VmHWM) for each direction beside the 300 MB target.

The bucket is moto's S3 server started on loopback by this script (a real HTTP S3 endpoint: multipart upload,
ranged streaming reads), or any bucket given with ``--s3-url s3://bucket/prefix`` and the AWS_* variables
(e.g. MinIO: AWS_ENDPOINT_URL, AWS_ALLOW_HTTP=true, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).
Run (Linux): ``python -m benchmarks.storage [--gigabytes 1.0] [--s3-url s3://bucket/prefix]``.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from benchmarks._common import print_table
from benchmarks.scale import RSS_TARGET_MB, met, run_big_file

MOTO_START_SECONDS = 30.0  #: how long moto's server may take to listen


@contextmanager
def moto_bucket(folder: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """moto's S3 server on a free loopback port with one bucket; yields its s3:// URL and the AWS_* variables."""
    log = folder / "moto.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"], stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + MOTO_START_SECONDS
        while not (found := re.search(r"Running on (http://127\.0\.0\.1:\d+)", log.read_text())):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("moto's server did not start:\n" + log.read_text())
            time.sleep(0.1)
        endpoint = found.group(1)
        httpx.put(f"{endpoint}/bench", trust_env=False).raise_for_status()
        yield "s3://bench/files", {"AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1",
                                   "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gigabytes", type=float, default=1.0, help="size of the file streamed in and out (GB)")
    parser.add_argument("--s3-url", default=None, help="a bucket to use instead of moto's (AWS_* from the env)")
    args = parser.parse_args()
    size = int(args.gigabytes * 1e9)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        print("local folder", flush=True)
        (root / "local").mkdir()
        at_rest, streams, _ = run_big_file(root / "local", size)
        rows += [["local folder", s.phase, f"{s.size / 1e9:.2f} GB", f"{s.seconds:.1f}",
                  f"{s.size / 1e6 / s.seconds:,.0f}", f"{s.peak_rss_mb:,.0f}", f"<= {RSS_TARGET_MB:.0f}",
                  met(s.peak_rss_mb <= RSS_TARGET_MB)] for s in streams]
        with moto_bucket(root) if args.s3_url is None else _given(args.s3_url) as (url, env):
            print(f"bucket {url}", flush=True)
            (root / "s3").mkdir()
            at_rest_s3, streams, _ = run_big_file(root / "s3", size, {"BROKER_STORAGE_URL": url, **env})
        rows += [[f"bucket ({'moto' if args.s3_url is None else url})", s.phase, f"{s.size / 1e9:.2f} GB",
                  f"{s.seconds:.1f}", f"{s.size / 1e6 / s.seconds:,.0f}", f"{s.peak_rss_mb:,.0f}",
                  f"<= {RSS_TARGET_MB:.0f}", met(s.peak_rss_mb <= RSS_TARGET_MB)] for s in streams]
    print_table(f"API peak RSS (VmHWM) streaming a big file; {at_rest:,.0f} / {at_rest_s3:,.0f} MB after start-up "
                "(local / bucket)", ["store", "phase", "size", "seconds", "MB/s", "peak RSS MB", "target MB", "met"],
                rows)


@contextmanager
def _given(url: str) -> Iterator[tuple[str, dict[str, str]]]:
    yield url, {k: v for k, v in os.environ.items() if k.startswith("AWS_")}


if __name__ == "__main__":
    main()
