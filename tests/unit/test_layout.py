"""The house rules that no linter checks: shipped modules stay small."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("schemas", "simulator", "broker", "providers", "workers", "api", "cli")
MAX_MODULE_LINES = 400  #: split by concept past this (CONVENTIONS.md)


def test_no_shipped_module_is_over_400_lines() -> None:
    sizes = {str(path.relative_to(ROOT)): len(path.read_text().splitlines())
             for package in PACKAGES for path in (ROOT / package).rglob("*.py")}
    assert len(sizes) > 100, "the packages were found"
    assert {path: n for path, n in sizes.items() if n > MAX_MODULE_LINES} == {}
