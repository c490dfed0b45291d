"""A real S3-compatible server for tests: moto's standalone server in a subprocess on a free loopback port."""

import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

START_TIMEOUT = 30.0  #: seconds moto may take to listen


@dataclass
class S3Server:
    """moto's server; ``env`` holds the AWS_* variables that point obstore (and any S3 client) at it."""

    proc: subprocess.Popen[str] | None = None
    endpoint: str = ""
    buckets: int = 0
    env: dict[str, str] = field(default_factory=dict)

    def start(self, log: Path) -> "S3Server":
        """Start it, logging to ``log`` (where its address is read from)."""
        with log.open("w") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
                                         stdout=out, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + START_TIMEOUT
        while not (found := re.search(r"Running on (http://127\.0\.0\.1:\d+)", log.read_text())):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"moto's S3 server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        self.endpoint = found.group(1)
        self.env = {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ALLOW_HTTP": "true", "AWS_ACCESS_KEY_ID": "test",
                    "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1"}
        return self

    def new_bucket(self) -> str:
        """A fresh, empty bucket's name."""
        self.buckets += 1
        name = f"test-bucket-{self.buckets}"
        httpx.put(f"{self.endpoint}/{name}", trust_env=False).raise_for_status()
        return name

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
