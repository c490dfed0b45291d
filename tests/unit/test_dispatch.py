"""Release: a line waiting out a sub-second backoff becomes eligible at its time, not at the next whole second; a
queue that is away holds leasing back."""

import time
from pathlib import Path

from sqlalchemy import text

from broker.catalogue import ModelSpec, ProviderConfig
from broker.db import make_engine
from broker.dispatch import CHAT_LINES_PER_MESSAGE, Chunk, QueueGate, release, release_and_send
from broker.migrate import upgrade
from tests.unit.conftest import insert_batch


def test_sub_second_not_before_is_honoured(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/d.db")
    upgrade(engine)
    provider = ProviderConfig(name="p", base_url="http://127.0.0.1:9/v1", models={"m": ModelSpec()})
    with engine.begin() as conn:
        insert_batch(conn, "in_progress", total=1)
        conn.execute(text("INSERT INTO line (batch_id, idx, custom_id, body, provider, status, attempts, not_before, "
                          "input_tokens, output_tokens) VALUES ('b', 0, 'c', '{}', 'p', 'pending', 1, :nb, 0, 0)"),
                     {"nb": time.time() + 0.4})
    with engine.connect() as conn:
        assert release(conn, provider, 60) == []  # still backing off
        conn.rollback()
        time.sleep(0.45)
        chunks = release(conn, provider, 60)
        conn.commit()
    assert [len(c.lines) for c in chunks] == [1]
    engine.dispose()


def test_a_queue_that_is_away_holds_leasing_back_until_it_answers(tmp_path: Path) -> None:
    """Redis down: the chunk whose send failed keeps its lease (it may have reached the queue), the chunks after it
    go back at once, and nothing more is leased (each lease would hold a slot for its whole length) until the queue
    answers a ping."""
    engine = make_engine(f"sqlite:///{tmp_path}/d.db")
    upgrade(engine)
    provider = ProviderConfig(name="p", base_url="http://127.0.0.1:9/v1", models={"m": ModelSpec()},
                              max_concurrency=64)
    with engine.begin() as conn:
        insert_batch(conn, "in_progress", total=40)
        for idx in range(40):
            conn.execute(text("INSERT INTO line (batch_id, idx, custom_id, body, provider, status, attempts, "
                              "not_before, input_tokens, output_tokens) VALUES ('b', :i, :c, '{}', 'p', 'pending', "
                              "0, 0, 0, 0)"), {"i": idx, "c": f"c{idx}"})
    queue_up, sent = False, []

    def send(chunk: Chunk) -> None:
        if not queue_up:
            raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        sent.extend(line.id for line in chunk.lines)

    def ping() -> None:
        if not queue_up:
            raise ConnectionError("Connection refused.")

    def counts() -> dict[str, int]:
        with engine.connect() as conn:
            return dict(conn.execute(text("SELECT status, count(*) FROM line GROUP BY status")).all())  # type: ignore[arg-type]

    gate = QueueGate(send, ping)
    assert release_and_send(engine, provider, 60, gate) == 0
    assert counts() == {"queued": CHAT_LINES_PER_MESSAGE, "pending": 40 - CHAT_LINES_PER_MESSAGE}
    with engine.connect() as conn:  # the lines given back lost no attempt
        assert conn.execute(text("SELECT max(attempts) FROM line WHERE status = 'pending'")).scalar_one() == 0
    assert release_and_send(engine, provider, 60, gate) == 0, "nothing is leased while the queue is away"
    assert counts()["pending"] == 40 - CHAT_LINES_PER_MESSAGE

    queue_up = True
    assert release_and_send(engine, provider, 60, gate) == 40 - CHAT_LINES_PER_MESSAGE
    assert counts() == {"queued": 40} and len(sent) == 40 - CHAT_LINES_PER_MESSAGE
    engine.dispose()
