"""Time-ordered object ids, so that sorting by id is sorting by creation (cursor pagination relies on it)."""

import secrets
import time


def new_id(prefix: str) -> str:
    """``prefix_`` + 12 hex digits of milliseconds + 16 random hex digits."""
    return f"{prefix}_{int(time.time() * 1000):012x}{secrets.token_hex(8)}"


def now() -> int:
    return int(time.time())
