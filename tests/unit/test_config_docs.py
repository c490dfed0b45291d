"""docs/configuration.md is generated from the settings class and must say what the code does."""

from pathlib import Path

from typer.testing import CliRunner

from broker.settings import Settings
from cli.config_docs import render
from cli.main import app

ROOT = Path(__file__).resolve().parents[2]


def test_the_configuration_page_is_up_to_date() -> None:
    assert (ROOT / "docs/configuration.md").read_text() == render(), \
        "docs/configuration.md is stale: run `broker config-docs` from the repository root"


def test_the_page_lists_every_setting_with_its_type_default_and_why() -> None:
    page = render()
    for name, info in Settings.model_fields.items():
        assert info.description, f"setting {name} has no description (a docstring under the field)"
    assert "| `BROKER_STORAGE_URL` | `str \\| None` | unset | Where file bytes live" in page
    assert "| `BROKER_MAX_ATTEMPTS` | `int` | `5` |" in page
    assert "| `REDIS_URL` |" in page and "Also read as `BROKER_REDIS_URL`" in page


def test_config_docs_check_fails_on_a_stale_page_and_the_command_fixes_it(tmp_path: Path) -> None:
    page = tmp_path / "configuration.md"
    page.write_text("# Configuration\n\nold\n")
    runner = CliRunner()
    assert runner.invoke(app, ["config-docs", "--check", "--output", str(page)]).exit_code == 1
    assert runner.invoke(app, ["config-docs", "--output", str(page)]).exit_code == 0
    assert runner.invoke(app, ["config-docs", "--check", "--output", str(page)]).exit_code == 0
    assert page.read_text() == render()
