"""``broker serve`` as a new user starts it, in a subprocess: a second one on the machine, unset API key variables,
configuration mistakes (one line, no traceback), and a quiet start."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from broker.settings import DEFAULT_SIMULATOR_PORT
from tests.harness import CHAT_MODEL, chat_line, free_port, submit, wait_for

ROOT = Path(__file__).parents[2]
STARTED = "API key:"  #: the last line `broker serve` prints once everything runs


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROKER_") and k not in ("DATABASE_URL",
                                                                                           "REDIS_URL")}
    return {**env, "BROKER_DATA_DIR": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path}/broker.db",
            "COLUMNS": "200", **extra}


def _serve(tmp_path: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "cli.main", "serve", "--no-auth", *args], cwd=ROOT, text=True,
                            env=_env(tmp_path, **env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _until_started(proc: subprocess.Popen[str], timeout: float = 60.0) -> str:
    assert proc.stdout is not None
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if STARTED in line:
            return "".join(seen)
    raise AssertionError("broker serve did not start:\n" + "".join(seen))


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    return out


@pytest.fixture
def default_port_busy() -> Iterator[None]:
    """The demo simulator's default port taken, as by a first ``broker serve`` (or already taken by someone)."""
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", DEFAULT_SIMULATOR_PORT))
        sock.listen()
    except OSError:
        pass  # busy already: just as good
    yield
    sock.close()


def test_a_second_serve_takes_a_free_simulator_port_and_runs_batches_quietly(
        tmp_path: Path, default_port_busy: None) -> None:
    port = free_port()
    proc = _serve(tmp_path, "--port", str(port))
    try:
        started = _until_started(proc)
        found = re.search(r"demo provider \(simulator\) on http://127\.0\.0\.1:(\d+)/v1", started)
        assert found and int(found.group(1)) != DEFAULT_SIMULATOR_PORT, started
        assert f"port {DEFAULT_SIMULATOR_PORT} is busy" in started
        assert "alembic" not in started and "Running upgrade" not in started  # no migration chatter
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="any", max_retries=0)
        batch = wait_for(client, submit(client, [chat_line(0)]).id)
        assert (batch.status, batch.request_counts and batch.request_counts.completed) == ("completed", 1)
    finally:
        out = _stop(proc)
    assert "Traceback" not in out


def test_a_busy_port_asked_for_explicitly_is_one_line_of_error(tmp_path: Path, default_port_busy: None) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        sim = subprocess.run([sys.executable, "-m", "cli.main", "serve", "--simulator-port", str(taken), "--port",
                              str(free_port())], cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True,
                             timeout=60)
        api = subprocess.run([sys.executable, "-m", "cli.main", "serve", "--port", str(taken)], cwd=ROOT,
                             env=_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert sim.returncode == 1 and f"the simulator port {taken} is busy" in sim.stderr, sim.stderr
    assert api.returncode == 1 and f"port {taken} on 127.0.0.1 is busy" in api.stderr, api.stderr
    assert "Traceback" not in sim.stderr + api.stderr


def test_a_broken_providers_file_is_one_line_of_error(tmp_path: Path) -> None:
    (tmp_path / "providers.toml").write_text("[providers.openai]\nkind = 'openai'\n")  # no base_url
    missing = subprocess.run([sys.executable, "-m", "cli.main", "serve", "--port", str(free_port())], cwd=ROOT,
                             env=_env(tmp_path, BROKER_PROVIDERS_FILE=str(tmp_path / "nope.toml")),
                             capture_output=True, text=True, timeout=60)
    broken = subprocess.run([sys.executable, "-m", "cli.main", "worker"], cwd=ROOT,
                            env=_env(tmp_path, BROKER_PROVIDERS_FILE=str(tmp_path / "providers.toml")),
                            capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "error: cannot start:" in missing.stderr and "nope.toml" in missing.stderr
    assert broken.returncode == 1 and "base_url" in broken.stderr
    assert "Traceback" not in missing.stderr + broken.stderr


def test_unset_api_key_variables_are_named_at_start(tmp_path: Path) -> None:
    (tmp_path / "providers.toml").write_text(
        "[providers.upstream]\nbase_url = 'http://127.0.0.1:9/v1'\napi_key_env = 'FIRSTHOUR_UNSET_KEY'\n"
        f"[providers.upstream.models]\n'{CHAT_MODEL}' = {{ input = 0.15, output = 0.6 }}\n"
        "[providers.local]\nbase_url = 'http://127.0.0.1:9/v1'\napi_key_env = 'FIRSTHOUR_SET_KEY'\n"
        "[providers.local.models]\n'other-model' = {}\n")
    proc = _serve(tmp_path, "--port", str(free_port()), BROKER_PROVIDERS_FILE=str(tmp_path / "providers.toml"),
                  FIRSTHOUR_SET_KEY="sk-set")
    try:
        started = _until_started(proc)
    finally:
        _stop(proc)
    assert "FIRSTHOUR_UNSET_KEY is not set: provider upstream" in started
    assert "FIRSTHOUR_SET_KEY" not in started
