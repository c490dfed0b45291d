"""Adaptive limits: the provider's real RPM limit is hidden (the catalogue says 5x more), then halved mid-run.

The simulator (its own process) enforces ``--rpm`` and answers like OpenAI (429 + Retry-After, x-ratelimit-*
headers); ``broker serve`` (embedded) is configured with 5x that limit. Figures, from what the simulator let
through each second: share of the real limit used after the first minute (target >= 85%), and how long after the
limit is halved the broker's rate is down to the new limit (target <= 30 s).
Run: ``python -m benchmarks.adaptive [--rpm 6000] [--halve-at 90] [--duration 150]``.
"""

import argparse
import time

import httpx
import openai

from benchmarks._common import broker_serve, chat_lines, jsonl, print_table, simulator

UTILISATION_TARGET = 0.85  #: issue #3: share of the real limit used after the first minute
FOLLOW_TARGET_SECONDS = 30.0  #: issue #3: time to follow a halved limit


def _moving(per_second: dict[int, int], start: int, end: int, width: int = 10) -> list[tuple[int, float]]:
    return [(t, sum(per_second.get(t - k, 0) for k in range(width)) / width) for t in range(start + width, end)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rpm", type=int, default=6000, help="the provider's real limit")
    parser.add_argument("--halve-at", type=int, default=90, help="seconds into the run")
    parser.add_argument("--duration", type=int, default=150, help="seconds of run in all")
    args = parser.parse_args()
    real, hidden_factor = args.rpm, 5
    lines = int(real / 60 * args.duration * 1.2)
    with simulator("--rpm", str(real), "--latency-ms", "200") as sim_url:
        admin = sim_url.removesuffix("/v1")
        providers = (f'[providers.sim]\nbase_url = "{sim_url}"\nmax_concurrency = 256\nrpm = {real * hidden_factor}\n'
                     '[providers.sim.models]\n"gpt-4o-mini" = { input = 0.15, output = 0.6 }\n')
        with broker_serve(providers) as base_url:
            client = openai.OpenAI(base_url=base_url, api_key="unused")
            upload = client.files.create(file=("adaptive.jsonl", jsonl(chat_lines(lines))), purpose="batch")
            batch = client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                          completion_window="24h")
            start = time.time()
            time.sleep(args.halve_at)
            httpx.post(f"{admin}/_sim/config", json={"rpm": real // 2}).raise_for_status()
            halved_at = int(time.time())
            time.sleep(args.duration - args.halve_at)
            client.batches.cancel(batch.id)
            stats = httpx.get(f"{admin}/_sim/stats").json()
            in_force = httpx.get(f"{base_url}/providers", headers={"Authorization": "Bearer x"}).json()["data"][0]
    per_second = {int(k): v for k, v in stats["successes_per_second"].items()}
    first = min(per_second)
    after_minute = [per_second.get(t, 0) for t in range(first + 60, halved_at)]
    used = sum(after_minute) / max(1, len(after_minute)) / (real / 60)
    follow = next((t - halved_at for t, rate in _moving(per_second, halved_at, halved_at + 120)
                   if rate <= real / 2 / 60 * 1.05), None)
    half_phase = [per_second.get(t, 0) for t in range(halved_at + 30, int(start) + args.duration - 2)]
    used_half = sum(half_phase) / max(1, len(half_phase)) / (real / 2 / 60)
    print_table(
        f"Adaptive limits: real limit {real} rpm hidden behind a configured {real * hidden_factor} rpm",
        ["figure", "measured", "target", "met"],
        [["limit used after the first minute", f"{used:.1%}", f">= {UTILISATION_TARGET:.0%}",
          "yes" if used >= UTILISATION_TARGET else "NO"],
         ["time to follow a halved limit", f"{follow} s" if follow is not None else "never",
          f"<= {FOLLOW_TARGET_SECONDS:.0f} s",
          "yes" if follow is not None and follow <= FOLLOW_TARGET_SECONDS else "NO"],
         ["halved limit used (from 30 s after)", f"{used_half:.1%}", "", ""],
         ["upstream calls answered 429", f"{stats['rate_limited']} of {stats['requests']}", "", ""],
         ["limit in force at the end (GET /v1/providers)", f"{in_force['in_force']['rpm']:.0f} rpm", "", ""]],
    )


if __name__ == "__main__":
    main()
