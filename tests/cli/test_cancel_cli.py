"""``broker cancel`` and ``broker results`` on a batch that is still running (a broker that runs no line)."""

from pathlib import Path

from tests.cli.conftest import Cli
from tests.harness import chat_line, submit, wait_for


def test_cancel_and_results_of_an_unfinished_batch(idle_cli: Cli, tmp_path: Path) -> None:
    client = idle_cli.client()
    batch = wait_for(client, submit(client, [chat_line(i) for i in range(10)]).id, statuses=("in_progress",))

    early = idle_cli("results", batch.id, "-o", str(tmp_path))
    assert early.exit_code == 0, early.output  # the lines finished so far: none yet
    assert f"batch {batch.id} is in_progress: 0 of 10 lines have succeeded so far" in early.stderr
    assert (tmp_path / f"{batch.id}_output.jsonl").read_text() == ""

    result = idle_cli("cancel", batch.id)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"{batch.id} cancelling"
    assert client.batches.retrieve(batch.id).status == "cancelling"
