"""Counters of what the simulator served, readable in-process or at ``GET /_sim/stats``.

Only the event loop that serves requests writes them; readers in other threads see plain ints and copies
of small dicts, which the GIL keeps consistent enough for tests and benchmarks.
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

MINUTES_KEPT = 60  #: per-minute request counts kept (older minutes are dropped)
PROMPTS_KEPT = 1000  #: prompts of the latest requests kept, in arrival order


def body_digest(raw: bytes) -> bytes:
    """The key of a request body in :attr:`SimulatorStats.calls_per_body` and ``answers_per_body``."""
    return hashlib.blake2b(raw, digest_size=16).digest()


@dataclass
class SimulatorStats:
    """Counters since start (or the last reset) of the inference endpoints' traffic."""

    requests: int = 0
    """Inference requests received (the five POST endpoints)."""
    by_endpoint: dict[str, int] = field(default_factory=dict)
    successes: int = 0
    """Requests answered 200."""
    by_status: dict[int, int] = field(default_factory=dict)
    """Responses sent, by HTTP status (400, 429, injected 500/503, ...)."""
    rate_limited: int = 0
    injected_errors: int = 0
    """Requests that drew an injected error of any kind."""
    dropped: int = 0
    """Connections cut mid-response ("drop")."""
    timeouts: int = 0
    """Requests made to hang ("timeout")."""
    client_disconnects: int = 0
    """Hanging requests whose client went away before the answer."""
    abandoned: int = 0
    """Requests whose client went away while their latency elapsed (a crashed or cancelled caller)."""
    calls_per_body: dict[bytes, int] = field(default_factory=dict)
    """Requests received per distinct body (a digest): the same request sent twice counts 2."""
    answers_per_body: dict[bytes, int] = field(default_factory=dict)
    """200 answers given per distinct body, to a client still there to read them."""
    in_flight: int = 0
    max_in_flight: int = 0
    streams_open: int = 0
    """Streamed answers whose events are still being sent (a request leaves ``in_flight`` when its stream starts)."""
    prompts: deque[str] = field(default_factory=lambda: deque(maxlen=PROMPTS_KEPT))
    """The last user message of the latest valid inference requests, in the order they arrived."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    per_minute: dict[int, int] = field(default_factory=dict)
    """Requests received per Unix minute (``int(time // 60)``), the last hour only."""
    requests_per_second: dict[int, int] = field(default_factory=dict)
    """Requests received per Unix second, the last hour only (the caller's send rate, 429s included)."""
    successes_per_second: dict[int, int] = field(default_factory=dict)
    """Successful answers per Unix second, the last hour only (what a rate limit really let through)."""
    native_batches: int = 0
    """Batches created through the native batch API (``POST /v1/batches``)."""
    native_batch_lines: int = 0
    """Native batch lines run (answered 200 or with an error body)."""
    native_batch_failed_lines: int = 0
    """Native batch lines that ended in the error file (4xx, injected 500, expired or cancelled unrun)."""
    since: float = field(default_factory=time.time)
    """Unix time of start or of the last reset."""

    def begin(self, endpoint: str) -> None:
        """Count a request arriving at ``endpoint``."""
        self.requests += 1
        self.by_endpoint[endpoint] = self.by_endpoint.get(endpoint, 0) + 1
        self.in_flight += 1
        if self.in_flight > self.max_in_flight:
            self.max_in_flight = self.in_flight
        minute = int(time.time() // 60)
        per_minute = self.per_minute
        if minute not in per_minute:
            per_minute[minute] = 0
            if len(per_minute) > MINUTES_KEPT:
                del per_minute[min(per_minute)]
        per_minute[minute] += 1
        second = int(time.time())
        per_second = self.requests_per_second
        per_second[second] = per_second.get(second, 0) + 1
        if len(per_second) > MINUTES_KEPT * 60:
            del per_second[min(per_second)]

    def called(self, raw: bytes) -> bytes:
        """Count a request by its body; returns the body's digest for :meth:`answered`."""
        digest = body_digest(raw)
        self.calls_per_body[digest] = self.calls_per_body.get(digest, 0) + 1
        return digest

    def prompted(self, inputs: list[tuple[str, bytes]]) -> None:
        """Keep a valid request's prompt (its first input's text) in :attr:`prompts`."""
        if inputs:
            self.prompts.append(inputs[0][0])

    def answered(self, digest: bytes) -> None:
        """Count a 200 answer to the request whose body has ``digest``."""
        self.answers_per_body[digest] = self.answers_per_body.get(digest, 0) + 1

    @property
    def repeated_calls(self) -> int:
        """Requests that repeated an earlier request's body (a line sent upstream again)."""
        return sum(n - 1 for n in list(self.calls_per_body.values()))

    @property
    def repeated_answers(self) -> int:
        """200 answers that repeated an earlier answer to the same body (billed twice, delivered both times)."""
        return sum(n - 1 for n in list(self.answers_per_body.values()))

    def finish(self, status: int | None) -> None:
        """Count a request leaving with ``status`` (None: nothing complete was sent)."""
        self.in_flight -= 1
        if status is None:
            return
        if status < 400:
            second = int(time.time())
            per_second = self.successes_per_second
            per_second[second] = per_second.get(second, 0) + 1
            if len(per_second) > MINUTES_KEPT * 60:
                del per_second[min(per_second)]
        self.by_status[status] = self.by_status.get(status, 0) + 1
        if status == 200:
            self.successes += 1
        elif status == 429:
            self.rate_limited += 1

    def reset(self) -> None:
        """Zero every counter (requests still in flight stay counted as in flight)."""
        in_flight, streams_open = self.in_flight, self.streams_open
        fresh = SimulatorStats()
        self.__dict__.update(fresh.__dict__)
        self.in_flight = self.max_in_flight = in_flight
        self.streams_open = streams_open

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready snapshot."""
        return {
            "requests": self.requests,
            "by_endpoint": dict(self.by_endpoint),
            "successes": self.successes,
            "by_status": {str(code): count for code, count in sorted(dict(self.by_status).items())},
            "rate_limited": self.rate_limited,
            "injected_errors": self.injected_errors,
            "dropped": self.dropped,
            "timeouts": self.timeouts,
            "client_disconnects": self.client_disconnects,
            "abandoned": self.abandoned,
            "repeated_calls": self.repeated_calls,
            "repeated_answers": self.repeated_answers,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "streams_open": self.streams_open,
            "prompts": list(self.prompts),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "per_minute": {str(minute): count for minute, count in sorted(dict(self.per_minute).items())},
            "successes_per_second": {str(s): n for s, n in sorted(dict(self.successes_per_second).items())},
            "requests_per_second": {str(s): n for s, n in sorted(dict(self.requests_per_second).items())},
            "native_batches": self.native_batches,
            "native_batch_lines": self.native_batch_lines,
            "native_batch_failed_lines": self.native_batch_failed_lines,
            "since": self.since,
        }
