"""Release: a line waiting out a sub-second backoff becomes eligible at its time, not at the next whole second."""

import time
from pathlib import Path

from sqlalchemy import text

from broker.catalogue import ModelSpec, ProviderConfig
from broker.db import make_engine
from broker.dispatch import release
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
