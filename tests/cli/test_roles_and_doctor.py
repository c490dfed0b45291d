"""Split roles refuse a setup where they could not work together; ``broker doctor`` says what is wrong."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from broker.settings import Settings
from cli.doctor import split_problems
from cli.main import app
from simulator import SimulatorServer
from tests.s3server import S3Server

ROOT = Path(__file__).resolve().parents[2]
UNSET = ("REDIS_URL", "BROKER_REDIS_URL", "DATABASE_URL", "BROKER_DATABASE_URL", "BROKER_STORAGE_URL",
         "BROKER_PROVIDERS_FILE")


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    return {**env, "PYTHONPATH": str(ROOT), **values}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("role", ["api", "planner", "worker"])
@pytest.mark.parametrize(("env", "named"), [
    ({"DATABASE_URL": "postgresql://broker@db/broker"}, "REDIS_URL is not set"),
    ({"REDIS_URL": "redis://127.0.0.1:6379/0"}, "DATABASE_URL is SQLite"),
])
def test_a_split_role_refuses_to_start_without_shared_queue_or_database(
        tmp_path: Path, role: str, env: dict[str, str], named: str) -> None:
    done = subprocess.run([sys.executable, "-m", "cli.main", role], cwd=tmp_path, env=_env(**env),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    message = " ".join(done.stderr.split())
    assert f"broker {role}: refusing to start." in message and named in message
    assert "broker serve" in message  # and says what to do instead
    assert not (tmp_path / "data").exists()  # it stopped before touching anything


def test_single_host_allows_sqlite_but_never_a_missing_queue() -> None:
    sqlite = Settings(_env_file=None, database_url="sqlite:///data/broker.db", redis_url="redis://127.0.0.1:6379/0")
    assert split_problems(sqlite, single_host=True) == []  # every role on this machine: they share the file
    assert len(split_problems(sqlite)) == 1
    no_queue = Settings(_env_file=None, database_url="sqlite:///data/broker.db")
    assert [p for p in split_problems(no_queue, single_host=True) if "REDIS_URL is not set" in p]


def _providers(tmp_path: Path, sim: SimulatorServer, dead_port: int) -> Path:
    path = tmp_path / "providers.toml"
    path.write_text(f"""
[providers.good]
base_url = "{sim.base_url}"
api_key_env = "DOCTOR_TEST_KEY"
[providers.good.models]
"gpt-4o-mini" = {{}}
[providers.nokey]
base_url = "{sim.base_url}"
api_key_env = "DOCTOR_TEST_MISSING_KEY"
[providers.nokey.models]
"gpt-4o-mini" = {{}}
[providers.down]
base_url = "http://127.0.0.1:{dead_port}/v1"
[providers.down.models]
"gpt-4o-mini" = {{}}
""")
    return path


def test_doctor_passes_a_working_embedded_setup(tmp_path: Path, sim: SimulatorServer,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    good = tmp_path / "good.toml"
    good.write_text(f'[providers.good]\nbase_url = "{sim.base_url}"\n[providers.good.models]\n"gpt-4o-mini" = {{}}\n')
    env = {k: None for k in UNSET} | {"BROKER_PROVIDERS_FILE": str(good), "COLUMNS": "250"}
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade", "--create"], env=env).exit_code == 0
    result = runner.invoke(app, ["doctor", "--embedded"], env=env)
    assert result.exit_code == 0, result.output
    assert "all checks passed" in result.output and "provider good" in result.output


def test_doctor_names_every_problem_and_exits_non_zero(tmp_path: Path, sim: SimulatorServer, s3_server: S3Server,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    dead = _closed_port()
    env = {k: None for k in UNSET} | s3_server.env | {
        "BROKER_PROVIDERS_FILE": str(_providers(tmp_path, sim, dead)), "DOCTOR_TEST_KEY": "sk-test",
        "DOCTOR_TEST_MISSING_KEY": None, "REDIS_URL": f"redis://127.0.0.1:{dead}/0",
        "BROKER_STORAGE_URL": "s3://no-such-bucket/files", "COLUMNS": "400",
    }
    result = CliRunner().invoke(app, ["doctor"], env=env)
    assert result.exit_code == 1, result.output

    def row(name: str) -> str:
        return next(line for line in result.output.splitlines() if line.strip().startswith(name))

    assert "FAIL" in row("split roles") and "DATABASE_URL is SQLite" in result.output
    assert "FAIL" in row("database") and "broker db upgrade" in row("database")  # never migrated
    assert "FAIL" in row("redis") and str(dead) in row("redis")
    assert "FAIL" in row("storage") and "no-such-bucket" in row("storage")
    assert "ok" in row("provider good") and "HTTP 200" in row("provider good")
    assert "FAIL" in row("provider nokey") and "DOCTOR_TEST_MISSING_KEY is not set" in row("provider nokey")
    assert "FAIL" in row("provider down") and "unreachable" in row("provider down")
    assert "6 problem(s)" in result.output
