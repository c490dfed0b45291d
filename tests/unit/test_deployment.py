"""compose.yaml and the Dockerfile describe a deployment that can work (Docker itself cannot run here)."""

import tomllib
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from broker.catalogue import load_catalogue
from broker.settings import Settings
from cli.main import app

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_compose_runs_every_role_on_redis_and_postgres(compose: dict) -> None:  # type: ignore[type-arg]
    services = compose["services"]
    assert {"redis", "postgres", "api", "planner", "worker", "simulator"} <= set(services)
    for role in ("api", "planner", "worker"):
        env = services[role]["environment"]
        assert env["DATABASE_URL"].startswith("postgresql+psycopg://") and "@postgres:" in env["DATABASE_URL"]
        assert env["REDIS_URL"].startswith("redis://redis:")
        assert services[role]["depends_on"]["postgres"]["condition"] == "service_healthy"
        settings = Settings(_env_file=None, **{"DATABASE_URL": env["DATABASE_URL"], "REDIS_URL": env["REDIS_URL"]})
        assert settings.redis_url == env["REDIS_URL"]
        for key in env:  # every variable is one the settings read
            assert key in ("DATABASE_URL", "REDIS_URL") or key.removeprefix("BROKER_").lower() in Settings.model_fields
    assert services["api"]["ports"] == ["8000:8000"]
    for name in ("redis", "postgres"):
        assert "healthcheck" in services[name]


def test_compose_commands_are_real_cli_commands(compose: dict) -> None:  # type: ignore[type-arg]
    runner = CliRunner()
    for name, service in compose["services"].items():
        if "command" in service and "build" in service:
            result = runner.invoke(app, [*service["command"], "--help"])
            assert result.exit_code == 0, f"{name}: broker {' '.join(service['command'])}: {result.output}"


def test_compose_catalogue_parses_and_points_at_the_simulator(compose: dict) -> None:  # type: ignore[type-arg]
    mount = next(v for v in compose["x-broker"]["volumes"] if v.endswith("/config/providers.toml:ro"))
    catalogue = load_catalogue(ROOT / mount.split(":")[0])
    assert catalogue.provider_for("gpt-4o-mini").base_url.startswith("http://simulator:8765")
    assert load_catalogue(ROOT / "providers.example.toml").provider_for("mistral-small-latest").name == "mistral"


def test_dockerfile_ships_every_package() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    assert {"schemas*", "simulator*", "broker*", "providers*", "workers*", "api*", "cli*"} <= set(packages)
    for package in packages:
        assert f"COPY {package.rstrip('*')} {package.rstrip('*')}" in dockerfile
    assert 'ENTRYPOINT ["broker"]' in dockerfile
