"""``broker cancel`` and ``broker results`` on a batch that is still running (a broker that runs no line)."""

from tests.cli.conftest import Cli, assert_clean_failure
from tests.harness import chat_line, submit, wait_for


def test_cancel_and_results_of_an_unfinished_batch(idle_cli: Cli) -> None:
    client = idle_cli.client()
    batch = wait_for(client, submit(client, [chat_line(i) for i in range(10)]).id, statuses=("in_progress",))

    early = idle_cli("results", batch.id)
    assert_clean_failure(early, f"batch {batch.id} is still in_progress (0/10 lines done)")

    result = idle_cli("cancel", batch.id)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"{batch.id} cancelling"
    assert client.batches.retrieve(batch.id).status == "cancelling"
