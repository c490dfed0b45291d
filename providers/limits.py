"""Shared rate limits: requests and tokens per minute per provider (and per model), adapting to the upstream.

Each limit is a pair of token buckets (requests, tokens) refilling continuously at ``limit / 60`` per second up to
``BURST_SECONDS`` worth. With Redis, one Lua script refills and takes from both atomically, so every worker
process on every host draws from the same buckets (DESIGN.md invariant 4); embedded mode keeps them in memory.
Callers are async: waiting for capacity never blocks a worker's event loop.

The limit in force adapts, whether or not a limit is configured. Calls answered (``settle``) are counted in windows of
``LEARN_WINDOW`` seconds, so the limiter knows the rate the provider has been accepting. A 429 (once per
``DECREASE_COOLDOWN``) sets the limit in force to ``LEARN_MARGIN`` of that accepted rate when it is lower (a limit that
keeps dropping shows in the next windows), or cuts it by ``DECREASE_FACTOR`` when nothing was measured yet, and
empties the buckets; its ``Retry-After`` holds every send back that long. A provider with no limit configured runs
unlimited until its first 429 and from then on under the limit learned. After ``INCREASE_INTERVAL`` without a 429
a requests limit that holds calls back grows by ``INCREASE_FRACTION`` (one not reached is left as it is). It never
exceeds the configured limit nor the ceiling the provider announces in ``x-ratelimit-limit-*`` headers (a ceiling
lower than the limit in force applies at once; with no limit configured, the ceiling becomes the limit).
"""

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis.asyncio as aioredis

BURST_SECONDS = 1.0  #: a bucket holds this many seconds of its limit: providers enforce per-minute limits per second
DECREASE_FACTOR = 0.7  #: a 429 multiplies the limit in force by this
DECREASE_COOLDOWN = 2.0  #: seconds: one 429 storm cuts the limit once
INCREASE_INTERVAL = 5.0  #: seconds without a 429 before the limit in force is probed upwards
INCREASE_FRACTION = 0.05  #: probe step, relative to the limit in force
MIN_FRACTION = 0.02  #: the limit in force never drops below this share of the configured one
LEARN_WINDOW = 5.0  #: seconds per window in which calls answered are counted (the last two are used)
LEARN_MARGIN = 0.95  #: a limit learned from 429s is this share of the rate the provider was seen to accept
KEY_TTL_MS = 3_600_000  #: idle limiter state expires after an hour


@dataclass(frozen=True, slots=True)
class Limit:
    """Configured requests and tokens per minute; None = unlimited."""

    rpm: int | None
    tpm: int | None


@dataclass
class LimitState:
    """What a limiter knows about one key, for ``GET /v1/providers`` and logs."""

    rpm: float | None
    tpm: float | None
    rate_limited: int = 0
    last_429_at: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Limiter(Protocol):
    async def acquire(self, key: str, limit: Limit, tokens: int) -> float:
        """Reserve one request and ``tokens`` tokens; returns the seconds to wait before calling (0 = go now)."""

    async def acquire_first(self, key: str, limit: Limit, tokens: int) -> float:
        """Like :meth:`acquire`, for a call that goes ahead of batch lines (an interactive one): it takes from the
        same buckets but waits only on a lane of its own that such calls alone drain, so batch lines yield."""

    async def settle(self, key: str, limit: Limit, estimated: int, actual: int) -> None:
        """A call was answered: correct the token bucket by its real usage (and count it as accepted)."""

    async def on_rate_limited(self, key: str, limit: Limit, retry_after: float | None = None) -> None:
        """The upstream answered 429 (asking to wait ``retry_after`` seconds, when it said)."""

    async def on_headers(self, key: str, limit: Limit, requests_limit: int | None, tokens_limit: int | None) -> None:
        """The upstream told its limits (``x-ratelimit-limit-*``)."""

    async def state(self, key: str, limit: Limit) -> LimitState: ...


async def wait_for_capacity(limiter: Limiter, key: str, limit: Limit, tokens: int) -> None:
    if (delay := await limiter.acquire(key, limit, tokens)) > 0:
        await asyncio.sleep(delay)


# --- in-process ---------------------------------------------------------------------------------------------------

@dataclass
class _Bucket:
    rpm: float | None
    tpm: float | None
    requests: float
    tokens: float
    at: float
    decreased_at: float = 0.0
    increased_at: float = 0.0
    ceiling_rpm: float | None = None  #: what the provider's headers last said
    ceiling_tpm: float | None = None
    rate_limited: int = 0
    last_429_at: float | None = None
    paused_until: float = 0.0  #: a 429's Retry-After holds every send back until then
    window_at: float = 0.0  #: start of the current counting window
    answered: int = 0  #: calls answered (not 429) in the current window...
    previous: int | None = None  #: ...and in the one before (None: no full window before)
    first: "_Bucket | None" = None  #: the lane of calls that go ahead of batch lines (acquire_first)

    def refill(self, now: float) -> None:
        elapsed = max(0.0, now - self.at)
        self.at = now
        if self.rpm:
            self.requests = min(self.rpm * BURST_SECONDS / 60, self.requests + elapsed * self.rpm / 60)
        if self.tpm:
            self.tokens = min(self.tpm * BURST_SECONDS / 60, self.tokens + elapsed * self.tpm / 60)

    def rotate(self, now: float) -> None:
        if now - self.window_at >= 2 * LEARN_WINDOW:
            self.window_at, self.previous, self.answered = now, None, 0
        elif now - self.window_at >= LEARN_WINDOW:
            self.window_at, self.previous, self.answered = self.window_at + LEARN_WINDOW, self.answered, 0

    def accepted_rpm(self, now: float) -> float | None:
        """Requests per minute the provider accepted over the last one or two windows (None: too short to tell)."""
        span = now - self.window_at + (LEARN_WINDOW if self.previous is not None else 0.0)
        if span < 1.0:
            return None
        return ((self.previous or 0) + self.answered) * 60 / span


class LocalLimiter:
    """Buckets in this process (embedded mode: one process runs every worker)."""

    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}

    def _bucket(self, key: str, limit: Limit) -> _Bucket:
        if key not in self._buckets:
            now = time.monotonic()
            self._buckets[key] = _Bucket(limit.rpm, limit.tpm, (limit.rpm or 0) * BURST_SECONDS / 60,
                                         (limit.tpm or 0) * BURST_SECONDS / 60, now, increased_at=now, window_at=now)
        return self._buckets[key]

    async def acquire(self, key: str, limit: Limit, tokens: int) -> float:
        b = self._bucket(key, limit)
        now = time.monotonic()
        b.refill(now)
        _probe_up(b, limit, now)
        return max(_reserve(b, tokens), b.paused_until - now)

    async def acquire_first(self, key: str, limit: Limit, tokens: int) -> float:
        b = self._bucket(key, limit)
        now = time.monotonic()
        b.refill(now)
        _probe_up(b, limit, now)
        if b.first is None:
            b.first = _Bucket(b.rpm, b.tpm, (b.rpm or 0) * BURST_SECONDS / 60, (b.tpm or 0) * BURST_SECONDS / 60, now)
        lane = b.first
        lane.rpm, lane.tpm = b.rpm, b.tpm
        lane.refill(now)
        _reserve(b, tokens)
        return max(_reserve(lane, tokens), b.paused_until - now)  # a Retry-After holds interactive calls back too

    async def settle(self, key: str, limit: Limit, estimated: int, actual: int) -> None:
        b = self._bucket(key, limit)
        b.tokens += estimated - actual
        b.rotate(time.monotonic())
        b.answered += 1

    async def on_rate_limited(self, key: str, limit: Limit, retry_after: float | None = None) -> None:
        b = self._bucket(key, limit)
        now = time.monotonic()
        b.refill(now)
        b.rotate(now)
        b.rate_limited += 1
        b.last_429_at = time.time()
        b.increased_at = now
        if retry_after:
            b.paused_until = max(b.paused_until, now + retry_after)
        if now - b.decreased_at >= DECREASE_COOLDOWN:
            b.decreased_at = now
            b.rpm = _lowered(b.rpm, limit.rpm, b.accepted_rpm(now))
            b.tpm = _decreased(b.tpm, limit.tpm)
            b.requests, b.tokens = min(b.requests, 0.0), min(b.tokens, 0.0)

    async def on_headers(self, key: str, limit: Limit, requests_limit: int | None, tokens_limit: int | None) -> None:
        b = self._bucket(key, limit)
        if requests_limit:
            b.ceiling_rpm = float(requests_limit)
            b.rpm = min(b.rpm or b.ceiling_rpm, b.ceiling_rpm)
        if tokens_limit and b.tpm:
            b.ceiling_tpm = float(tokens_limit)
            b.tpm = min(b.tpm, b.ceiling_tpm)

    async def state(self, key: str, limit: Limit) -> LimitState:
        b = self._bucket(key, limit)
        return LimitState(b.rpm, b.tpm, b.rate_limited, b.last_429_at)


def _reserve(b: _Bucket, tokens: int) -> float:
    """Take a request and its tokens now, even on credit; the debt says how long the caller waits (callers wait
    once, in order, instead of all waking to retry)."""
    wait = 0.0
    if b.rpm:
        b.requests -= 1
        if b.requests < 0:
            wait = -b.requests * 60 / b.rpm
    if b.tpm:
        b.tokens -= tokens
        if b.tokens < 0:
            wait = max(wait, -b.tokens * 60 / b.tpm)
    return wait


def _decreased(current: float | None, configured: int | None) -> float | None:
    if not current or not configured:
        return current
    return max(configured * MIN_FRACTION, current * DECREASE_FACTOR)


def _lowered(current: float | None, configured: int | None, accepted: float | None) -> float | None:
    """The requests limit after a 429: what the provider was seen to accept, with a margin, when that was measured
    (a limit that drops further shows in the next windows); a cut by DECREASE_FACTOR when it was not."""
    learned = accepted * LEARN_MARGIN if accepted is not None and accepted > 0 else None
    if not current:  # nothing in force yet: learn it (or stay unlimited until a rate is measured)
        return max(1.0, learned) if learned else current
    lowered = min(current, learned) if learned else current * DECREASE_FACTOR
    return max(configured * MIN_FRACTION if configured else 1.0, lowered)


def _probe_up(b: _Bucket, limit: Limit, now: float) -> None:
    if now - b.increased_at < INCREASE_INTERVAL:
        return
    b.increased_at = now
    if b.rpm and b.requests < 1:  # only a limit that holds calls back is probed (one not reached says nothing)
        caps = [c for c in (limit.rpm, b.ceiling_rpm) if c]
        b.rpm = min([b.rpm * (1 + INCREASE_FRACTION), *caps])
    if b.tpm and limit.tpm:
        b.tpm = min(float(limit.tpm), b.ceiling_tpm or float(limit.tpm), b.tpm * (1 + INCREASE_FRACTION))


# --- Redis ----------------------------------------------------------------------------------------------------------

# KEYS[1] = state hash. ARGV: now_ms, configured rpm, configured tpm (0 = unlimited), tokens, op, burst_s, cooldown_ms,
# factor, increase interval ms, increase fraction, floor, header rpm, header tpm, ttl ms, window ms, margin,
# retry-after ms. Fields: r, t (bucket levels), ts (last refill ms), rpm, tpm (limits in force,
# 0 = none), dec, inc (ms), n429, last429, cr, ct (ceilings the provider's headers announced), pause (ms), ws (window
# start ms), wn (calls answered in it), pn (in the window before), pw (1 when there was one).
_SCRIPT = """
local key = KEYS[1]
local now = tonumber(ARGV[1])
local crpm, ctpm, cost, op, burst = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local W = tonumber(ARGV[15])
local h = redis.call('HMGET', key, 'r', 't', 'ts', 'rpm', 'tpm', 'dec', 'inc', 'n429', 'cr', 'ct', 'pause', 'ws',
                     'wn', 'pn', 'pw')
local rpm = tonumber(h[4]) or crpm
local tpm = tonumber(h[5]) or ctpm
local ts = tonumber(h[3]) or now
local elapsed = math.max(0, now - ts)
local r = math.min(rpm * burst / 60, (tonumber(h[1]) or rpm * burst / 60) + elapsed * rpm / 60000)
local t = math.min(tpm * burst / 60, (tonumber(h[2]) or tpm * burst / 60) + elapsed * tpm / 60000)
local dec, inc, n429 = tonumber(h[6]) or 0, tonumber(h[7]) or now, tonumber(h[8]) or 0
local cr, ct = tonumber(h[9]) or crpm, tonumber(h[10]) or ctpm
local pause, ws = tonumber(h[11]) or 0, tonumber(h[12]) or now
local wn, pn, pw = tonumber(h[13]) or 0, tonumber(h[14]) or 0, tonumber(h[15]) or 0
if now - ws >= 2 * W then ws = now; wn = 0; pn = 0; pw = 0
elseif now - ws >= W then ws = ws + W; pn = wn; pw = 1; wn = 0 end
local result = 0
if op == 'acquire' then
  if now - inc >= tonumber(ARGV[9]) then
    inc = now
    if rpm > 0 and r < 1 then
      rpm = rpm * (1 + tonumber(ARGV[10]))
      if crpm > 0 then rpm = math.min(rpm, crpm) end
      if cr > 0 then rpm = math.min(rpm, cr) end
    end
    if ctpm > 0 then tpm = math.min(ctpm, ct, tpm * (1 + tonumber(ARGV[10]))) end
  end
  local wait = math.max(0, pause - now)
  if rpm > 0 then r = r - 1; if r < 0 then wait = math.max(wait, -r * 60000 / rpm) end end
  if tpm > 0 then t = t - cost; if t < 0 then wait = math.max(wait, -t * 60000 / tpm) end end
  result = wait
elseif op == 'first' then
  local p = redis.call('HMGET', key, 'pr', 'pt', 'pts')
  local pel = math.max(0, now - (tonumber(p[3]) or now))
  local pr = math.min(rpm * burst / 60, (tonumber(p[1]) or rpm * burst / 60) + pel * rpm / 60000)
  local pt = math.min(tpm * burst / 60, (tonumber(p[2]) or tpm * burst / 60) + pel * tpm / 60000)
  local wait = math.max(0, pause - now)
  if rpm > 0 then r = r - 1; pr = pr - 1; if pr < 0 then wait = -pr * 60000 / rpm end end
  if tpm > 0 then t = t - cost; pt = pt - cost; if pt < 0 then wait = math.max(wait, -pt * 60000 / tpm) end end
  redis.call('HSET', key, 'pr', pr, 'pt', pt, 'pts', now)
  result = wait
elseif op == 'settle' then
  t = t + cost
  wn = wn + 1
elseif op == 'limited' then
  n429 = n429 + 1
  inc = now
  redis.call('HSET', key, 'last429', now)
  pause = math.max(pause, now + tonumber(ARGV[17]))
  if now - dec >= tonumber(ARGV[7]) then
    dec = now
    local factor, floor = tonumber(ARGV[8]), tonumber(ARGV[11])
    local span = now - ws + pw * W
    local learned = 0
    if span >= 1000 then learned = (pn + wn) * 60000 / span * tonumber(ARGV[16]) end
    if rpm == 0 then
      if learned > 0 then rpm = math.max(1, learned) end
    else
      local lowered = rpm * factor
      if learned > 0 then lowered = math.min(rpm, learned) end
      local least = 1
      if crpm > 0 then least = crpm * floor end
      rpm = math.max(least, lowered)
    end
    if ctpm > 0 then tpm = math.max(ctpm * floor, tpm * factor) end
    r = math.min(r, 0); t = math.min(t, 0)
  end
elseif op == 'headers' then
  local hr, ht = tonumber(ARGV[12]), tonumber(ARGV[13])
  if hr > 0 then
    cr = hr
    if rpm > 0 then rpm = math.min(rpm, hr) else rpm = hr end
  end
  if ht > 0 and ctpm > 0 then ct = ht; tpm = math.min(tpm, ht) end
end
redis.call('HSET', key, 'r', r, 't', t, 'ts', now, 'rpm', rpm, 'tpm', tpm, 'dec', dec, 'inc', inc, 'n429', n429,
           'cr', cr, 'ct', ct, 'pause', pause, 'ws', ws, 'wn', wn, 'pn', pn, 'pw', pw)
redis.call('PEXPIRE', key, tonumber(ARGV[14]))
return tostring(result)
"""


class RedisLimiter:
    """Buckets in Redis, shared by every worker process on every host."""

    def __init__(self, client: aioredis.Redis, prefix: str = "broker:limits:") -> None:
        self.client = client
        self.prefix = prefix
        self._script = client.register_script(_SCRIPT)

    async def _run(self, key: str, limit: Limit, op: str, cost: int = 0, header_rpm: int = 0,
                   header_tpm: int = 0, retry_after: float | None = None) -> float:
        args: list[str | int | float] = [
            int(time.time() * 1000), limit.rpm or 0, limit.tpm or 0, cost, op, BURST_SECONDS,
            DECREASE_COOLDOWN * 1000, DECREASE_FACTOR, INCREASE_INTERVAL * 1000, INCREASE_FRACTION,
            MIN_FRACTION, header_rpm, header_tpm, KEY_TTL_MS, LEARN_WINDOW * 1000, LEARN_MARGIN,
            int((retry_after or 0) * 1000),
        ]
        return float(await self._script(keys=[self.prefix + key], args=args)) / 1000

    async def acquire(self, key: str, limit: Limit, tokens: int) -> float:
        return await self._run(key, limit, "acquire", tokens)

    async def acquire_first(self, key: str, limit: Limit, tokens: int) -> float:
        return await self._run(key, limit, "first", tokens)

    async def settle(self, key: str, limit: Limit, estimated: int, actual: int) -> None:
        await self._run(key, limit, "settle", estimated - actual)

    async def on_rate_limited(self, key: str, limit: Limit, retry_after: float | None = None) -> None:
        await self._run(key, limit, "limited", retry_after=retry_after)

    async def on_headers(self, key: str, limit: Limit, requests_limit: int | None, tokens_limit: int | None) -> None:
        await self._run(key, limit, "headers", header_rpm=requests_limit or 0, header_tpm=tokens_limit or 0)

    async def state(self, key: str, limit: Limit) -> LimitState:
        raw = await self.client.hgetall(self.prefix + key)
        fields = {(k.decode() if isinstance(k, bytes) else k): float(v) for k, v in raw.items()}
        last = fields.get("last429")
        return LimitState(fields.get("rpm", limit.rpm or 0) or None, fields.get("tpm", limit.tpm or 0) or None,
                          int(fields.get("n429", 0)), last / 1000 if last else None)
