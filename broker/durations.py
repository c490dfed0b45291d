"""Durations as users write them: ``"90s"``, ``"10m"``, ``"24h"``, ``"7d"``."""

import re

from broker.errors import InvalidRequest

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MIN_WINDOW_SECONDS = 60  #: shortest completion window accepted
MAX_WINDOW_SECONDS = 30 * 86400  #: longest completion window accepted


def parse_window(text: str, *, param: str = "completion_window", min_seconds: int = MIN_WINDOW_SECONDS) -> int:
    match = _DURATION.match(text)
    if not match:
        raise InvalidRequest(
            f"Invalid completion_window '{text}': use a number and a unit (s, m, h, d), e.g. '24h'.",
            param=param,
        )
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if not min_seconds <= seconds <= MAX_WINDOW_SECONDS:
        raise InvalidRequest(
            f"completion_window must be between {min_seconds}s and {MAX_WINDOW_SECONDS // 86400}d.",
            param=param,
        )
    return seconds
