"""Adaptive limits: the provider's real RPM limit is hidden, then halved mid-run.

The simulator (its own process) enforces ``--rpm`` and answers 429s with ``Retry-After`` like OpenAI; by default its
``x-ratelimit-*`` headers are off, so the limit is really hidden (``--headers`` turns them on). ``broker serve``
(embedded) gets no limit at all by default (``--configured-factor 5`` configures 5x the real limit instead), so the
limit in force is learned from 429s. Figures, from what the simulator saw each second:

* share of the real limit used after the first minute (successes per second, target >= 90 %);
* share of calls answered 429 from 30 s after the limit dropped to the end (target <= 2 %), and after the first
  minute before the drop (the simulator's bucket starts with a minute's allowance, so the limit can only be found
  once that burst is spent);
* time after the limit is halved until the broker's *send* rate (requests arriving at the simulator, 429s included,
  10 s moving average) is down to 105 % of the new limit (target <= 30 s): successes cannot show a slow follow,
  since the simulator caps them at the limit whatever is sent;
* share of the halved limit used from 30 s after the halving.

Run: ``python -m benchmarks.adaptive [--rpm 6000] [--halve-at 90] [--duration 150] [--headers]
[--configured-factor 0]``.
"""

import argparse
import time

import httpx
import openai

from benchmarks._common import broker_serve, chat_lines, jsonl, print_table, simulator

UTILISATION_TARGET = 0.90  #: issue "Dispatch core": share of the hidden limit used after the first minute
RATE_LIMITED_TARGET = 0.02  #: ... and at most this share of calls answered 429 after the first 30 s
FOLLOW_TARGET_SECONDS = 30.0  #: time for the send rate to follow a halved limit
SETTLE_SECONDS = 30  #: after the limit drops, 429s are counted from this many seconds on


def _moving(per_second: dict[int, int], start: int, end: int, width: int = 10) -> list[tuple[int, float]]:
    return [(t, sum(per_second.get(t - k, 0) for k in range(width)) / width) for t in range(start + width, end)]


def _per_second(stats: dict[str, dict[str, int]], name: str) -> dict[int, int]:
    return {int(k): v for k, v in stats[name].items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rpm", type=int, default=6000, help="the provider's real limit")
    parser.add_argument("--halve-at", type=int, default=90, help="seconds into the run")
    parser.add_argument("--duration", type=int, default=150, help="seconds of run in all")
    parser.add_argument("--headers", action="store_true", help="the simulator sends x-ratelimit-* headers")
    parser.add_argument("--configured-factor", type=float, default=0.0,
                        help="configure the provider with this multiple of the real limit (0: no limit configured)")
    args = parser.parse_args()
    real = args.rpm
    lines = int(real / 60 * args.duration * 2)  # more than can run: the limit, not the batch, must end the run
    configured = int(real * args.configured_factor)
    with simulator("--rpm", str(real), "--latency-ms", "200") as sim_url:
        admin = sim_url.removesuffix("/v1")
        httpx.post(f"{admin}/_sim/config", json={"ratelimit_headers": args.headers}).raise_for_status()
        providers = (f'[providers.sim]\nbase_url = "{sim_url}"\nmax_concurrency = 256\n'
                     + (f"rpm = {configured}\n" if configured else "")
                     + '[providers.sim.models]\n"gpt-4o-mini" = { input = 0.15, output = 0.6 }\n')
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
    successes, sent = _per_second(stats, "successes_per_second"), _per_second(stats, "requests_per_second")
    first, end = min(sent), int(start) + args.duration - 2
    after_minute = [successes.get(t, 0) for t in range(first + 60, halved_at)]
    used = sum(after_minute) / max(1, len(after_minute)) / (real / 60)
    follow = next((t - halved_at for t, rate in _moving(sent, halved_at, halved_at + 120)
                   if rate <= real / 2 / 60 * 1.05), None)
    half_phase = [successes.get(t, 0) for t in range(halved_at + 30, end)]
    used_half = sum(half_phase) / max(1, len(half_phase)) / (real / 2 / 60)
    def limited_share(seconds: range) -> tuple[float, int, int]:
        calls = sum(sent.get(t, 0) for t in seconds)
        limited = calls - sum(successes.get(t, 0) for t in seconds)
        limited = max(0, limited)  # a call sent in one second may be answered in the next
        return limited / max(1, calls), limited, calls

    share, limited, calls = limited_share(range(halved_at + SETTLE_SECONDS, end))
    before_share, before_limited, before_calls = limited_share(range(first + 60, halved_at))
    limit_text = f"{configured} rpm configured" if configured else "no limit configured"
    print_table(
        f"Adaptive limits: real limit {real} rpm hidden ({limit_text}, x-ratelimit-* headers "
        f"{'on' if args.headers else 'off'}), halved after {args.halve_at} s",
        ["figure", "measured", "target", "met"],
        [["limit used after the first minute", f"{used:.1%}", f">= {UTILISATION_TARGET:.0%}",
          "yes" if used >= UTILISATION_TARGET else "NO"],
         [f"calls answered 429 from {SETTLE_SECONDS} s after the drop", f"{share:.2%} ({limited} of {calls})",
          f"<= {RATE_LIMITED_TARGET:.0%}", "yes" if share <= RATE_LIMITED_TARGET else "NO"],
         ["calls answered 429 after the first minute, before the drop",
          f"{before_share:.2%} ({before_limited} of {before_calls})", "", ""],
         ["time until the send rate follows a halved limit", f"{follow} s" if follow is not None else "never",
          f"<= {FOLLOW_TARGET_SECONDS:.0f} s",
          "yes" if follow is not None and follow <= FOLLOW_TARGET_SECONDS else "NO"],
         ["halved limit used (from 30 s after)", f"{used_half:.1%}", "", ""],
         ["all calls answered 429", f"{stats['rate_limited']} of {stats['requests']}", "", ""],
         ["limit in force at the end (GET /v1/providers)",
          f"{in_force['in_force']['rpm']:.0f} rpm" if in_force["in_force"]["rpm"] else "none", "", ""]],
    )


if __name__ == "__main__":
    main()
