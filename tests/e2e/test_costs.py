"""Every cost figure is usage x price: per line, per batch (Batch.cost_usd) and per day (GET /v1/usage)."""

import httpx
import pytest

from tests.harness import EmbeddedBroker, chat_line, embedding_line, read_jsonl, submit, wait_for

CHAT_PRICE = (0.15, 0.60)  #: tests/harness.sim_catalogue: USD per 1M input / output tokens
EMBEDDING_PRICE = 0.02


def test_batch_and_daily_costs_equal_usage_times_price(broker: EmbeddedBroker) -> None:
    client = broker.client()
    chat = wait_for(client, submit(client, [chat_line(i, max_tokens=20) for i in range(40)]).id)
    emb = wait_for(client, submit(client, [embedding_line(i) for i in range(30)], endpoint="/v1/embeddings").id)

    chat_usage = [line["response"]["body"]["usage"] for line in read_jsonl(client, chat.output_file_id)]
    chat_cost = sum(u["prompt_tokens"] * CHAT_PRICE[0] + u["completion_tokens"] * CHAT_PRICE[1]
                    for u in chat_usage) / 1e6
    emb_usage = [line["response"]["body"]["usage"] for line in read_jsonl(client, emb.output_file_id)]
    emb_cost = sum(u["prompt_tokens"] * EMBEDDING_PRICE for u in emb_usage) / 1e6
    assert chat_cost > 0 and emb_cost > 0
    assert (chat.model_extra or {})["cost_usd"] == pytest.approx(chat_cost, rel=1e-9)
    assert (emb.model_extra or {})["cost_usd"] == pytest.approx(emb_cost, rel=1e-9)

    report = httpx.get(f"{broker.base_url}/usage", headers={"Authorization": f"Bearer {broker.key}"}).json()
    by_model = {row["model"]: row for row in report["data"]}
    assert by_model["gpt-4o-mini"]["requests"] == 40 and by_model["text-embedding-3-small"]["requests"] == 30
    assert by_model["gpt-4o-mini"]["cost_usd"] == pytest.approx(chat_cost, rel=1e-9)
    assert by_model["gpt-4o-mini"]["input_tokens"] == sum(u["prompt_tokens"] for u in chat_usage)
    assert report["total_cost_usd"] == pytest.approx(chat_cost + emb_cost, rel=1e-6)
    assert {row["provider"] for row in report["data"]} == {"sim"}
    assert {row["route"] for row in report["data"]} == {"realtime"}

    other = httpx.get(f"{broker.base_url}/usage", headers={"Authorization": f"Bearer {broker.new_key('other')}"})
    assert other.json()["data"] == []  # projects never see each other's usage
    bad = httpx.get(f"{broker.base_url}/usage", params={"start_date": "yesterday"},
                    headers={"Authorization": f"Bearer {broker.key}"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "start_date"
