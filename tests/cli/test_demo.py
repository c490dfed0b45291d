"""``broker demo``, the README's first command: the main job end to end on the embedded default."""

from pathlib import Path

from rich.console import Console

from cli.demo import run_demo


def test_demo_runs_a_chat_and_an_embeddings_batch_and_reports_route_and_cost(tmp_path: Path) -> None:
    console = Console(record=True, width=120)
    assert run_demo(50, tmp_path, console)
    report = console.export_text()
    assert report.count("completed") >= 2 and "realtime" in report and "$0.0" in report
    assert "first output line" in report
