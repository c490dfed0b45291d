"""The first admin key: created and printed once by the first ``broker serve`` (kept in a 0600 file), never again;
``BROKER_ADMIN_KEY`` sets it instead. And ``broker db upgrade`` names its database and creates none unasked."""

import os
import re
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from typer.testing import CliRunner

from cli.main import app
from tests.harness import free_port

ROOT = Path(__file__).parents[2]
START_TIMEOUT_SECONDS = 60.0


@dataclass
class Served:
    url: str  #: the API's base URL
    printed: str = ""  #: what it printed, once it stopped


@contextmanager
def serve(folder: Path, **env: str) -> Iterator[Served]:
    """``broker serve`` run from ``folder`` (its data dir is ./data there), until the block ends."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "serve", "--port", str(port)], cwd=folder,
        env={**os.environ, "PYTHONPATH": str(ROOT), "BROKER_SIMULATOR_PORT": str(free_port()), "COLUMNS": "400",
             **env},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    served = Served(url + "/v1")
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "broker serve did not start"
            time.sleep(0.2)
        yield served
    finally:
        proc.terminate()
        served.printed = proc.communicate(timeout=30)[1]


def projects_status(url: str, key: str) -> int:
    return httpx.get(url + "/organization/projects", headers={"Authorization": f"Bearer {key}"}).status_code


def test_the_first_start_prints_an_admin_key_once_and_keeps_it_private(tmp_path: Path) -> None:
    with serve(tmp_path) as first_start:
        pass
    first = first_start.printed
    match = re.search(r"admin key \(shown once; also kept in (\S+), mode 0600\): (sk-ib-admin-\S+)", first)
    assert match, first
    key_file, value = Path(tmp_path / match.group(1)), match.group(2)
    assert key_file == tmp_path / "data" / "admin_key"
    assert key_file.read_text().strip() == value
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    with serve(tmp_path) as second_start:
        assert projects_status(second_start.url, value) == 200
    again = second_start.printed
    assert "sk-ib-" not in again and f"kept in {Path('data') / 'admin_key'}" in again


def test_broker_admin_key_sets_the_admin_key(tmp_path: Path) -> None:
    with serve(tmp_path, BROKER_ADMIN_KEY="sk-ib-admin-from-compose") as first:
        assert projects_status(first.url, "sk-ib-admin-from-compose") == 200
    assert "sk-ib-" not in first.printed and "BROKER_ADMIN_KEY" in first.printed
    assert not (tmp_path / "data" / "admin_key").exists()
    with serve(tmp_path, BROKER_ADMIN_KEY="sk-ib-admin-changed") as changed:
        assert projects_status(changed.url, "sk-ib-admin-changed") == 200
        assert projects_status(changed.url, "sk-ib-admin-from-compose") == 401  # the value it replaced is revoked


def test_db_upgrade_names_its_database_and_creates_none_unless_asked(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/elsewhere/broker.db"
    refused = CliRunner().invoke(app, ["db", "upgrade"], env={"BROKER_DATABASE_URL": url, "COLUMNS": "400"})
    assert refused.exit_code == 1 and url in refused.output and "--create" in refused.output
    assert not (tmp_path / "elsewhere" / "broker.db").exists()
    created = CliRunner().invoke(app, ["db", "upgrade", "--create"], env={"BROKER_DATABASE_URL": url, "COLUMNS": "400"})
    assert created.exit_code == 0, created.output
    assert (tmp_path / "elsewhere" / "broker.db").exists()
    assert CliRunner().invoke(app, ["db", "upgrade"], env={"BROKER_DATABASE_URL": url, "COLUMNS": "400"}).exit_code == 0
