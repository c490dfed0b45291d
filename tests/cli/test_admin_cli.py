"""``broker projects | keys | admin``: governance over HTTP with an admin key, like every other command."""

from pathlib import Path
from uuid import uuid4

import openai
import pytest

from tests.cli.conftest import Cli, assert_clean_failure
from tests.harness import CHAT_MODEL, EmbeddedBroker


@pytest.fixture
def admin_cli(cli_broker: EmbeddedBroker) -> Cli:
    """``broker …`` with the broker's admin key in BROKER_ADMIN_KEY (and no project key)."""
    cli = Cli(cli_broker, "")
    cli.runner.env = {"BROKER_ADMIN_KEY": cli_broker.admin_key, "BROKER_API_KEY": None}
    return cli


def test_project_then_key_then_model_access(admin_cli: Cli, cli_broker: EmbeddedBroker) -> None:
    name = f"team-{uuid4().hex[:8]}"
    created = admin_cli("projects", "create", name, "--allow-models", CHAT_MODEL, "--monthly-budget-usd", "5")
    assert created.exit_code == 0, created.output
    project_id = created.stdout.strip()
    assert project_id.startswith("proj_") and "$5.00" in created.stderr

    made = admin_cli("keys", "create", "--project", name, "--name", "ci")
    assert made.exit_code == 0, made.output
    value = made.stdout.strip()
    client = cli_broker.client(value)
    assert [m.id for m in client.models.list()] == [CHAT_MODEL]

    listed = admin_cli("keys", "list", "--project", project_id)
    assert listed.exit_code == 0 and value[:10] in listed.stdout and value not in listed.stdout

    changed = admin_cli("projects", "set", name, "--all-models", "--block-models", "text-embedding-3-small",
                        "--regions", "eu")
    assert changed.exit_code == 0, changed.output
    assert "models allowed all, blocked text-embedding-3-small" in changed.stderr and "regions eu" in changed.stderr
    assert "text-embedding-3-small" not in [m.id for m in client.models.list()]
    assert name in admin_cli("projects", "list").stdout

    with cli_broker.admin_http() as admin:
        key_id = admin.get(f"/organization/projects/{project_id}/api_keys").json()["data"][0]["id"]
    rotated = admin_cli("keys", "rotate", key_id, "--project", name, "--grace-period-seconds", "0")
    assert rotated.exit_code == 0, rotated.output
    with pytest.raises(openai.AuthenticationError):
        client.models.list()
    fresh = cli_broker.client(rotated.stdout.strip())
    assert fresh.models.list().data
    assert admin_cli("keys", "revoke", key_id, "--project", name).exit_code == 0
    with pytest.raises(openai.AuthenticationError):
        fresh.models.list()

    assert admin_cli("projects", "archive", name).exit_code == 0
    assert name not in admin_cli("projects", "list").stdout
    assert name in admin_cli("projects", "list", "--include-archived").stdout
    audit = admin_cli("admin", "audit", "--project", name)
    assert audit.exit_code == 0
    for event in ("project.created", "api_key.created", "api_key.rotated", "api_key.deleted", "project.archived"):
        assert event in audit.stdout


def test_keys_create_makes_a_new_project_by_name(admin_cli: Cli, cli_broker: EmbeddedBroker) -> None:
    name = f"new-{uuid4().hex[:8]}"
    made = admin_cli("keys", "create", "--project", name, "--read-only")
    assert made.exit_code == 0, made.output
    assert f"created project {name}" in made.stderr
    client = cli_broker.client(made.stdout.strip())
    assert client.files.list().data == []
    with pytest.raises(openai.PermissionDeniedError):
        client.files.create(file=("a.jsonl", b"{}\n"), purpose="batch")


def test_admin_keys(admin_cli: Cli, cli_broker: EmbeddedBroker) -> None:
    made = admin_cli("admin", "create-key", "--name", "ops")
    assert made.exit_code == 0, made.output
    value = made.stdout.strip()
    assert value.startswith("sk-ib-admin-")
    listed = admin_cli("admin", "list-keys", BROKER_ADMIN_KEY=value)
    assert listed.exit_code == 0 and "ops" in listed.stdout and value not in listed.stdout


def test_without_an_admin_key_or_with_a_project_key_the_commands_say_why(
        admin_cli: Cli, cli: Cli, tmp_path: Path) -> None:
    missing = admin_cli("projects", "list", BROKER_ADMIN_KEY=None, BROKER_DATA_DIR=str(tmp_path))
    assert_clean_failure(missing, "no admin key")
    assert str(tmp_path / "admin_key") in missing.stderr
    assert_clean_failure(admin_cli("projects", "list", BROKER_ADMIN_KEY=cli.key), "(HTTP 403)")
    assert_clean_failure(admin_cli("keys", "list", "--project", "no-such-project"), "no project named")
    (tmp_path / "admin_key").write_text(admin_cli.broker.admin_key + "\n")
    from_file = admin_cli("projects", "list", BROKER_ADMIN_KEY=None, BROKER_DATA_DIR=str(tmp_path))
    assert from_file.exit_code == 0, from_file.output
