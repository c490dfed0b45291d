"""The production shape on one machine: ``broker api`` (one or more), ``broker planner`` and N ``broker worker``
processes sharing one PostgreSQL database and one Redis (used by the integration tests and the benchmarks).

With ``separate_data`` each process gets a data folder of its own, as on separate hosts: then they share only
the database, Redis and the file store (set ``BROKER_STORAGE_URL`` to a bucket in ``env``)."""

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx
from prometheus_client.parser import text_string_to_metric_families

from broker.auth import ADMIN_KEY_PREFIX

ROOT = Path(__file__).resolve().parent.parent
IN_FLIGHT_METRIC = "broker_upstream_in_flight"  #: the gauge of upstream calls running in a process
STARTUP_TIMEOUT = 120.0  #: seconds for every API process to answer /healthz (imports are slow on a loaded machine)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalCluster:
    def __init__(self, workdir: Path, database_url: str, redis_url: str, providers_toml: str, workers: int = 2,
                 worker_threads: int = 16, env: dict[str, str] | None = None, apis: int = 1,
                 separate_data: bool = False) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        providers = workdir / "providers.toml"
        providers.write_text(providers_toml)
        self.workdir, self.workers, self.worker_threads = workdir, workers, worker_threads
        self.separate_data = separate_data
        self.ports = [free_port() for _ in range(apis)]
        self.port = self.ports[0]
        # one admin key for every process, as compose gives it (each may have a data folder of its own); one-off
        # commands (``run``) reach this cluster's API with it
        self.admin_key = ADMIN_KEY_PREFIX + secrets.token_urlsafe(24)
        self.env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url,
                    "BROKER_PROVIDERS_FILE": str(providers), "BROKER_DATA_DIR": str(workdir / "data"),
                    "BROKER_URL": self.base_url, "BROKER_ADMIN_KEY": self.admin_key,
                    "BROKER_METRICS_HOST": "127.0.0.1", **(env or {})}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.commands: dict[str, tuple[str, ...]] = {}  #: the ``broker`` arguments each process was started with
        #: where each planner and worker serves its Prometheus /metrics (the API serves its own on its port)
        self.metrics_ports = {name: free_port() for name in ("planner", *(f"worker{n}" for n in range(1, workers + 1)))}

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def base_urls(self) -> list[str]:
        """Every API process's base URL."""
        return [f"http://127.0.0.1:{port}/v1" for port in self.ports]

    def data_dir(self, name: str) -> Path:
        """The data folder of process ``name``."""
        return self.workdir / (f"data-{name}" if self.separate_data else "data")

    def run(self, *args: str) -> str:
        """Run a one-off ``broker`` command to completion; returns its stdout."""
        done = subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=ROOT, env=self.env,
                              capture_output=True, check=True, timeout=120)
        return done.stdout.decode().strip()

    def spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        """Start ``broker <args>`` as process ``name`` (its log appends to ``<name>.log``)."""
        self.commands[name] = args
        log = (self.workdir / f"{name}.log").open("ab")
        env = {**self.env, "BROKER_DATA_DIR": str(self.data_dir(name))}
        proc = subprocess.Popen([sys.executable, "-m", "cli.main", *args], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        self.procs[name] = proc
        return proc

    def start(self) -> Self:
        self.run("db", "upgrade")  # once, before the roles start
        for n, port in enumerate(self.ports):
            self.spawn("api" if n == 0 else f"api{n + 1}", "api", "--host", "127.0.0.1", "--port", str(port))
        self.spawn("planner", "planner", "--metrics-port", str(self.metrics_ports["planner"]))
        for n in range(1, self.workers + 1):
            self.spawn(f"worker{n}", "worker", "--threads", str(self.worker_threads),
                       "--metrics-port", str(self.metrics_ports[f"worker{n}"]))
        try:
            self.wait_healthy()
        except RuntimeError:
            self.stop()
            raise
        return self

    def calls_in_flight(self, name: str) -> int:
        """Upstream calls running now in process ``name``, as its /metrics shows them (0 if it does not answer)."""
        try:
            page = httpx.get(self.metrics_url(name), timeout=2, trust_env=False).text
        except httpx.HTTPError:
            return 0
        return int(sum(sample.value for family in text_string_to_metric_families(page)
                       if family.name == IN_FLIGHT_METRIC for sample in family.samples))

    def busiest_worker(self, timeout: float = 30.0) -> tuple[str, int]:
        """The live worker with the most upstream calls in flight right now, and how many; waits until one has some.

        Read from each worker's /metrics at the moment of asking: the queue hands a message to whichever worker
        polls first, so which one holds the lines swings from one moment to the next, and what a worker did over
        the last seconds says nothing about what it holds now.
        """
        deadline = time.monotonic() + timeout
        while True:
            live = [name for name, proc in self.procs.items() if name.startswith("worker") and proc.poll() is None]
            counts = {name: self.calls_in_flight(name) for name in live}
            busiest = max(counts, key=lambda name: counts[name], default=None)
            if busiest is not None and counts[busiest] > 0:
                return busiest, counts[busiest]
            if time.monotonic() > deadline:
                raise RuntimeError("no live worker has a call in flight:\n" + self.logs())
            time.sleep(0.05)

    def metrics_url(self, name: str) -> str:
        """The /metrics page of process ``name`` (``api``, ``planner``, ``worker1``, ...)."""
        port = self.port if name == "api" else self.metrics_ports[name]
        return f"http://127.0.0.1:{port}/metrics"

    def kill(self, name: str) -> None:
        """SIGKILL one process, as a crash would."""
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait(10)

    def restart(self, name: str) -> subprocess.Popen[bytes]:
        """Start process ``name`` again as it was first started (a supervisor bringing a crashed role back)."""
        if self.procs[name].poll() is None:
            self.kill(name)
        return self.spawn(name, *self.commands[name])

    def wait_healthy(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Wait until every API process answers /healthz."""
        deadline = time.monotonic() + timeout
        for port in self.ports:
            while True:
                try:
                    httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).raise_for_status()
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the API did not start:\n" + self.logs()) from None
                    time.sleep(0.2)

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


class LocalRedis:
    """A private ``redis-server`` on a free loopback port, with no persistence: :meth:`restart` loses every
    message, as a crashed Redis without persistence does (the chaos tests and benchmark restart it)."""

    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir, self.port = workdir, free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Self:
        log = (self.workdir / "redis.log").open("ab")
        self.proc = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                                      "--appendonly", "no", "--dir", str(self.workdir)], stdout=log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL the server: every queued message is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def restart(self, down_seconds: float = 0.0) -> None:
        """Kill the server, stay down ``down_seconds``, start an empty one on the same port."""
        self.kill()
        time.sleep(down_seconds)
        self.start()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.kill()
