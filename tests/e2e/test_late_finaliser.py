"""A finaliser that stalled past its claim (the database away, a paused VM) while another process ended the batch:
when it wakes, what the user already has stays as it was and it leaves no file behind."""

import time

from broker.finalize import write_results
from tests.harness import EmbeddedBroker, chat_line, submit, wait_for


def test_a_finaliser_waking_after_the_batch_ended_changes_nothing(broker: EmbeddedBroker) -> None:
    client = broker.client()
    lines = [chat_line(i, "please __sim_error_400__" if i % 4 == 0 else None) for i in range(12)]
    ended = wait_for(client, submit(client, lines).id)
    assert ended.status == "completed" and ended.output_file_id and ended.error_file_id
    files = sorted(f.id for f in client.files.list())
    objects = sorted(p.name for p in broker.core.store.root.rglob("*") if p.is_file())
    time.sleep(1.1)  # a second write would stamp a later completed_at

    write_results(broker.core.engine, broker.core.store, ended.id, "completed")

    again = client.batches.retrieve(ended.id)
    assert (again.completed_at, again.output_file_id, again.error_file_id) == (
        ended.completed_at, ended.output_file_id, ended.error_file_id)
    assert sorted(f.id for f in client.files.list()) == files
    assert sorted(p.name for p in broker.core.store.root.rglob("*") if p.is_file()) == objects
    assert len(client.files.content(ended.error_file_id).text.splitlines()) == 3
