"""The production shape on one machine: ``broker api``, ``broker planner`` and N ``broker worker`` processes
sharing one PostgreSQL database and one Redis (used by the integration tests and the benchmarks)."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT = 60.0  #: seconds for the API to answer /healthz


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalCluster:
    def __init__(self, workdir: Path, database_url: str, redis_url: str, providers_toml: str, workers: int = 2,
                 worker_threads: int = 16, env: dict[str, str] | None = None) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        providers = workdir / "providers.toml"
        providers.write_text(providers_toml)
        self.workdir, self.workers, self.worker_threads = workdir, workers, worker_threads
        self.env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url,
                    "BROKER_PROVIDERS_FILE": str(providers), "BROKER_DATA_DIR": str(workdir / "data"),
                    "BROKER_METRICS_HOST": "127.0.0.1", **(env or {})}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.port = free_port()
        #: where each planner and worker serves its Prometheus /metrics (the API serves its own on its port)
        self.metrics_ports = {name: free_port() for name in ("planner", *(f"worker{n}" for n in range(1, workers + 1)))}

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def run(self, *args: str) -> str:
        """Run a one-off ``broker`` command to completion; returns its stdout."""
        done = subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=ROOT, env=self.env,
                              capture_output=True, check=True, timeout=120)
        return done.stdout.decode().strip()

    def spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}.log").open("wb")
        proc = subprocess.Popen([sys.executable, "-m", "cli.main", *args], cwd=ROOT, env=self.env, stdout=log,
                                stderr=subprocess.STDOUT)
        self.procs[name] = proc
        return proc

    def start(self) -> Self:
        self.run("db", "upgrade")  # once, before the roles start
        self.spawn("api", "api", "--host", "127.0.0.1", "--port", str(self.port))
        self.spawn("planner", "planner", "--metrics-port", str(self.metrics_ports["planner"]))
        for n in range(1, self.workers + 1):
            self.spawn(f"worker{n}", "worker", "--threads", str(self.worker_threads),
                       "--metrics-port", str(self.metrics_ports[f"worker{n}"]))
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).raise_for_status()
                return self
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("the API did not start:\n" + self.logs()) from None
                time.sleep(0.2)

    def metrics_url(self, name: str) -> str:
        """The /metrics page of process ``name`` (``api``, ``planner``, ``worker1``, ...)."""
        port = self.port if name == "api" else self.metrics_ports[name]
        return f"http://127.0.0.1:{port}/metrics"

    def kill(self, name: str) -> None:
        """SIGKILL one process, as a crash would."""
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait(10)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def logs(self) -> str:
        return "\n".join(f"--- {name}\n{self.log(name)[-3000:]}" for name in self.procs)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
