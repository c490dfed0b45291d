"""What route choice saves: the same workload, naive real-time on the default provider vs ``route: auto``.

Workload: 10,000 chat lines and 10,000 embedding lines, each a batch with a 24 h window. Two simulated providers:

- ``primary`` (listed first: the default) with a native batch API at a 50 % discount;
- ``offpeak``, dearer in real time, with an off-peak window at half price that opens a little after the run starts
  (a night-time window, brought forward so the benchmark takes minutes, not hours).

Naive: ``route: realtime`` (every line called now, on the first deployment). Auto: the broker picks per model the
cheapest route that fits the window. Both costs are the broker's accounting: every line's actual usage x the price
of the route it took. Target: auto <= 0.55 x naive. Prints the route mix.

By hand (reference): a user who skips the broker and sends both files straight to ``primary``'s native batch API with
the openai SDK (upload, create, poll every 5 s, download), priced from the usage in the output files at
``primary``'s prices less the batch discount: the cheapest a user gets without the broker, at the cost of their own
script (no fallback, no off-peak routes, no retries of failed lines).

Run: ``python -m benchmarks.cost [--lines 10000] [--offpeak-in 90] [--turnaround 20]``.
"""

import argparse
import datetime as dt
import json
import time
from typing import Any

import httpx
import openai
from openai.types import Batch

from benchmarks._common import broker_serve, chat_lines, embedding_lines, jsonl, print_table, simulator

TARGET = 0.55  #: auto's cost as a share of naive's
PRICES = {  # USD per 1M tokens: (input, output)
    "primary": {"gpt-4o-mini": (0.15, 0.60), "text-embedding-3-small": (0.02, 0.0)},
    "offpeak": {"gpt-4o-mini": (0.20, 0.80), "text-embedding-3-small": (0.016, 0.0)},
}
OFFPEAK_MULTIPLIER = 0.5
NATIVE_DISCOUNT = 0.5  #: primary's native batch API price cut


def catalogue(primary_url: str, offpeak_url: str, opens: dt.datetime, turnaround: float) -> str:
    def models(name: str) -> str:
        return "\n".join(f'"{m}" = {{ input = {i}, output = {o} }}' for m, (i, o) in PRICES[name].items())

    closes = opens + dt.timedelta(hours=2)
    return f"""
[providers.primary]
base_url = "{primary_url}"
max_concurrency = 64
native_batch = {{ discount = {NATIVE_DISCOUNT}, turnaround_seconds = {turnaround * 3}, poll_seconds = 2 }}
[providers.primary.models]
{models("primary")}

[providers.offpeak]
base_url = "{offpeak_url}"
max_concurrency = 64
off_peak = [{{ start = "{opens:%H:%M:%S}", end = "{closes:%H:%M:%S}", multiplier = {OFFPEAK_MULTIPLIER} }}]
[providers.offpeak.models]
{models("offpeak")}
"""


def submit(client: openai.OpenAI, lines: int, poll_seconds: float,
           **extra: Any) -> list[tuple[str, Batch]]:
    """The workload's two files as batches on ``client``'s server, waited for: (model, final batch) per batch."""
    created = []
    for endpoint, body in (("/v1/chat/completions", chat_lines(lines, max_tokens=64)),
                           ("/v1/embeddings", embedding_lines(lines))):
        upload = client.files.create(file=("lines.jsonl", jsonl(body)), purpose="batch")
        created.append((str(body[0]["body"]["model"]),  # type: ignore[index]
                        client.batches.create(input_file_id=upload.id, endpoint=endpoint,  # type: ignore[arg-type]
                                              completion_window="24h", **extra)))
    done = []
    for model, batch in created:
        while (batch := client.batches.retrieve(batch.id)).status not in ("completed", "failed", "expired"):
            time.sleep(poll_seconds)
        done.append((model, batch))
    return done


def run_workload(base_url: str, lines: int, route: str) -> tuple[list[Batch], dict[str, Any], float]:
    client = openai.OpenAI(base_url=base_url, api_key="bench", max_retries=5)
    start = time.monotonic()
    done = [batch for _, batch in submit(client, lines, 1.0, extra_body={"route": route})]
    usage = client.get("/usage", cast_to=object)
    assert isinstance(usage, dict)
    return done, usage, time.monotonic() - start


def by_hand(primary_url: str, lines: int) -> tuple[float, int, float]:
    """Both workloads sent to the native batch API directly, polled every 5 s: (cost in USD, lines answered,
    seconds)."""
    client = openai.OpenAI(base_url=primary_url, api_key="bench", max_retries=5)
    start = time.monotonic()
    cost, answered = 0.0, 0
    for model, batch in submit(client, lines, 5.0):
        if not batch.output_file_id:
            continue
        input_price, output_price = PRICES["primary"][model]
        for raw in client.files.content(batch.output_file_id).text.splitlines():
            usage = json.loads(raw)["response"]["body"]["usage"]
            tokens = usage["prompt_tokens"] * input_price + usage.get("completion_tokens", 0) * output_price
            cost += tokens / 1e6 * (1 - NATIVE_DISCOUNT)
            answered += 1
    return cost, answered, time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=10_000, help="chat lines, and as many embedding lines")
    parser.add_argument("--offpeak-in", type=float, default=90.0, help="seconds until the off-peak window opens")
    parser.add_argument("--turnaround", type=float, default=20.0, help="the simulated batch API's turnaround (s)")
    args = parser.parse_args()

    with simulator() as primary_url, simulator() as offpeak_url:
        httpx.post(primary_url.removesuffix("/v1") + "/_sim/config",
                   json={"batch_turnaround_seconds": args.turnaround}).raise_for_status()
        results: dict[str, tuple[list[Batch], dict[str, Any], float]] = {}
        for route in ("realtime", "auto"):
            opens = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=args.offpeak_in)
            with broker_serve(catalogue(primary_url, offpeak_url, opens, args.turnaround)) as base_url:
                results[route] = run_workload(base_url, args.lines, route)
        hand_cost, hand_lines, hand_seconds = by_hand(primary_url, args.lines)

    rows = []
    for route, (batches, usage, seconds) in results.items():
        for row in usage["data"]:
            rows.append((route, row["model"], row["provider"], row["route"], f"{row['requests']:,}",
                         f"{row['input_tokens']:,}", f"{row['output_tokens']:,}", f"${row['cost_usd']:.4f}"))
        lines_done = sum(b.request_counts.completed for b in batches if b.request_counts)
        rows.append((route, "all", "", f"{lines_done:,} lines in {seconds:.0f} s", "", "", "",
                     f"${usage['total_cost_usd']:.4f}"))
    rows.append(("by hand", "all", "primary", f"native batch: {hand_lines:,} lines in {hand_seconds:.0f} s", "", "",
                 "", f"${hand_cost:.4f}"))
    print_table("Route mix and accounted cost (usage x price of the route taken)",
                ["run", "model", "provider", "route", "requests", "input tok", "output tok", "cost"], rows)
    naive, auto = results["realtime"][1]["total_cost_usd"], results["auto"][1]["total_cost_usd"]
    ratio = auto / naive if naive else float("nan")
    print_table("Cost: route auto vs naive real-time on the default provider, and vs the native batch API by hand",
                ["naive (realtime)", "auto", "by hand", "auto / naive", "auto / by hand", "target", "result"],
                [(f"${naive:.4f}", f"${auto:.4f}", f"${hand_cost:.4f}", f"{ratio:.3f}x",
                  f"{auto / hand_cost if hand_cost else float('nan'):.3f}x", f"<= {TARGET}x (auto / naive)",
                  "PASS" if ratio <= TARGET else "FAIL")])


if __name__ == "__main__":
    main()
