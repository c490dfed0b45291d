"""An API process' slots: an ended call's slot serves the next call without a query, then is freed in SQL."""

import asyncio
import time
from pathlib import Path

from sqlalchemy import text

from broker.catalogue import ProviderConfig
from broker.db import make_engine
from broker.migrate import upgrade
from providers.slots import FLUSH_SECONDS, IDLE_GRANT_SECONDS, Slots

PROVIDER = ProviderConfig(name="p", base_url="http://127.0.0.1:9/v1", max_concurrency=2)


def test_a_freed_slot_is_reused_then_released(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/slots.db")
    upgrade(engine)

    def states() -> dict[str, str]:
        with engine.connect() as conn:
            return {r[0]: r[1] for r in conn.execute(text("SELECT id, state FROM interactive_call"))}

    async def scenario() -> tuple[str, str, dict[str, str], dict[str, str]]:
        slots = Slots(engine)
        first = await slots.admit(PROVIDER, "proj", 20, time.monotonic() + 1)
        slots.release("p", first, "proj", ("p", "m", "interactive", 3, 4, 0.5))
        second = await slots.admit(PROVIDER, "proj", 20, time.monotonic() + 1)
        during = await asyncio.to_thread(states)
        slots.release("p", second)
        await asyncio.sleep(IDLE_GRANT_SECONDS + 3 * FLUSH_SECONDS)
        return first, second, during, await asyncio.to_thread(states)

    first, second, during, after = asyncio.run(scenario())
    assert second == first and during == {first: "running"}, "the second call took the first one's slot"
    assert after == {first: "ended"}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT requests, input_tokens, output_tokens, cost_usd, route FROM usage_daily "
                                 "WHERE project_id = 'proj'")).one() == (1, 3, 4, 0.5, "interactive")


def test_a_stopping_process_writes_what_is_pending_and_frees_its_slots(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/slots.db")
    upgrade(engine)
    slots = Slots(engine)

    async def calls() -> None:
        first = await slots.admit(PROVIDER, "proj", 20, time.monotonic() + 1)
        await slots.admit(PROVIDER, "proj", 20, time.monotonic() + 1)  # still running when the loop ends
        slots.release("p", first, "proj", ("p", "m", "interactive", 3, 4, 0.5))  # not written yet

    asyncio.run(calls())
    slots.flush()
    with engine.connect() as conn:
        assert {r[0] for r in conn.execute(text("SELECT state FROM interactive_call"))} == {"ended"}
        assert conn.execute(text("SELECT requests FROM usage_daily WHERE project_id = 'proj'")).scalar_one() == 1
