"""compose.yaml and the Dockerfile describe a deployment that can work (Docker itself cannot run here)."""

import os
import tomllib
from pathlib import Path
from unittest.mock import patch

import pytest
import yaml
from obstore.store import S3Store
from typer.testing import CliRunner

from broker.catalogue import load_catalogue
from broker.settings import Settings
from cli.config_docs import LIBRARY_VARIABLES, env_names
from cli.doctor import split_problems
from cli.main import app

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


BROKER_IMAGE = "inference-broker:local"
ONE_SHOT = {"migrate", "bucket"}  #: services that run to completion before the roles start


def _settings_env_names() -> set[str]:
    """Every environment variable the settings read."""
    return {n for name, info in Settings.model_fields.items() for n in env_names(name, info)}


def test_compose_runs_every_role_on_redis_postgres_and_object_storage(compose: dict) -> None:  # type: ignore[type-arg]
    services = compose["services"]
    assert {"redis", "postgres", "minio", "bucket", "migrate", "api", "planner", "worker", "simulator"} <= set(services)
    assert services["planner"]["deploy"]["replicas"] == 2  # one leads, the other takes over
    assert services["api"]["ports"] == ["8000:8000"]
    for role in ("api", "planner", "worker"):
        service = services[role]
        env = service["environment"]
        assert env["DATABASE_URL"].startswith("postgresql+psycopg://") and "@postgres:" in env["DATABASE_URL"]
        assert env["REDIS_URL"].startswith("redis://redis:")
        assert env["BROKER_STORAGE_URL"].startswith("s3://") and env["AWS_ENDPOINT_URL"] == "http://minio:9000"
        assert "BROKER_ENVIRONMENT" not in env  # no code reads it
        waits = {name: dep["condition"] for name, dep in service["depends_on"].items()}
        assert waits == {"migrate": "service_completed_successfully", "bucket": "service_completed_successfully",
                         "redis": "service_healthy"}
        assert "volumes" not in service or all(v.endswith(":ro") for v in service["volumes"])  # no shared disk
        with patch.dict(os.environ, env, clear=True):  # as the container's process reads them
            settings = Settings(_env_file=None)
        assert split_problems(settings) == [] and settings.storage_url == env["BROKER_STORAGE_URL"]
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_compose_builds_one_image_and_checks_the_health_of_every_service(compose: dict) -> None:  # type: ignore[type-arg]
    services = compose["services"]
    assert [name for name, s in services.items() if "build" in s] == ["migrate"]  # built once...
    for name in ("migrate", "simulator", "api", "planner", "worker"):
        assert services[name]["image"] == BROKER_IMAGE  # ...and reused
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service["restart"] == "no"
        else:
            assert "healthcheck" in service, f"{name} has no healthcheck"


def test_every_variable_compose_sets_is_read_by_the_code(compose: dict) -> None:  # type: ignore[type-arg]
    env = dict(compose["x-broker"]["environment"])
    assert compose["x-broker"]["env_file"][0]["path"] == "./broker.env"
    example = (ROOT / "broker.env.example").read_text().splitlines()
    env |= {line.split("=", 1)[0]: "" for line in example if line and not line.startswith("#")}
    assert "BROKER_ADMIN_KEY" in env
    aws = {k: v for k, v in env.items() if k.startswith("AWS_")}
    assert set(env) - set(aws) <= _settings_env_names(), set(env) - set(aws) - _settings_env_names()
    assert set(aws) <= {name for name, _ in LIBRARY_VARIABLES}  # documented in docs/configuration.md...
    allow_http = aws.pop("AWS_ALLOW_HTTP")  # a client option, not an S3 one (the moto tests use it from the env)
    S3Store.from_url(env["BROKER_STORAGE_URL"], config={k.lower(): v for k, v in aws.items()},  # ...read by obstore
                     client_options={"allow_http": allow_http == "true"})


def test_compose_commands_are_real_cli_commands(compose: dict) -> None:  # type: ignore[type-arg]
    runner = CliRunner()
    for name, service in compose["services"].items():
        if service.get("image") != BROKER_IMAGE:
            continue
        commands = [service["command"]]
        if (check := service.get("healthcheck", {}).get("test", []))[:2] == ["CMD", "broker"]:
            commands.append(check[2:])
        for command in commands:
            result = runner.invoke(app, [*command, "--help"])
            assert result.exit_code == 0, f"{name}: broker {' '.join(command)}: {result.output}"


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
