"""Streamed chat on an Anthropic deployment: when the first words reach the client, straight from the simulator's
Messages stream vs through the broker (and, with ``--reference``, through another checkout's broker side by side);
an OpenAI-compatible upstream's stream, which the broker relays as it is, beside it.

The simulator takes ``--word-ms`` per word of its answer (a stream sends each word as it comes; a whole answer comes
when its stream would have ended), so a broker that waits for the whole answer before it streams shows it in its
first-chunk time. Requests go one after another. Run: ``python -m benchmarks.streaming [--requests 20]
[--word-ms 25] [--reference /path/to/other/checkout]``.
"""

import argparse
import statistics
import time
from pathlib import Path

import httpx

from benchmarks._common import broker_serve, print_table, simulator

PROMPT = "Tell me, in a few words, how a broker streams an answer from one provider to many clients today"
MODEL = "claude-haiku"
OPENAI_MODEL = "gpt-4o-mini"  #: the same stream from an OpenAI-compatible upstream, relayed as it is
FIRST_WORD = b"Simulated"  #: the simulator's answers start with it


def _providers(sim_url: str) -> str:
    return f"""
[providers.claude]
kind = "anthropic"
base_url = "{sim_url}"
max_concurrency = 8
models = {{ "{MODEL}" = {{ input = 0.8, output = 4.0, upstream_model = "claude-3-5-haiku-latest" }} }}
[providers.gpt]
base_url = "{sim_url}"
max_concurrency = 8
models = {{ "{OPENAI_MODEL}" = {{ input = 0.15, output = 0.6 }} }}
"""


def _timed(client: httpx.Client, path: str, body: dict[str, object]) -> tuple[float, float]:
    """Seconds to the first event holding the answer's first words and to the stream's end."""
    start = time.perf_counter()
    first = None
    with client.stream("POST", path, json=body, timeout=60) as resp:
        resp.raise_for_status()
        for data in resp.iter_raw():
            if first is None and FIRST_WORD in data:
                first = time.perf_counter() - start
    assert first is not None, "no words in the stream"
    return first, time.perf_counter() - start


def measure(url: str, path: str, model: str, requests: int) -> tuple[float, float]:
    """Median ms to the first words and to the end over ``requests`` streamed calls."""
    body: dict[str, object] = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "stream": True}
    if path == "messages":
        body["max_tokens"] = 256
    with httpx.Client(base_url=url + "/") as client:
        _timed(client, path, body)  # warm the connection and the broker's first-call paths
        runs = [_timed(client, path, body) for _ in range(requests)]
    return statistics.median(r[0] for r in runs) * 1000, statistics.median(r[1] for r in runs) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--word-ms", type=float, default=25.0)
    parser.add_argument("--reference", type=Path, help="another checkout whose broker runs beside this one")
    args = parser.parse_args()
    rows = []
    with simulator() as sim_url:
        httpx.post(sim_url.removesuffix("/v1") + "/_sim/config", json={"stream_delay_ms": args.word_ms})
        for name, path, model in [("Anthropic", "messages", MODEL), ("OpenAI", "chat/completions", OPENAI_MODEL)]:
            first, whole = measure(sim_url, path, model, args.requests)
            rows.append([f"simulator direct, {name} events", f"{first:.1f}", f"{whole:.1f}"])
        brokers = [("this checkout", {})]
        if args.reference:
            brokers.append(("reference", {"root": args.reference}))
        for name, where in brokers:
            with broker_serve(_providers(sim_url), **where) as url:
                for upstream, model in [("Anthropic", MODEL), ("OpenAI", OPENAI_MODEL)]:
                    first, whole = measure(url, "chat/completions", model, args.requests)
                    rows.append([f"broker ({name}), {upstream} upstream", f"{first:.1f}", f"{whole:.1f}"])
    print_table(f"Streamed chat on Anthropic: median of {args.requests} calls, {args.word_ms:g} ms per word",
                ["path", "first words ms", "whole stream ms"], rows)


if __name__ == "__main__":
    main()
