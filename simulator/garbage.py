"""Garbage answers on demand: a marker anywhere in a request makes the simulator answer 200 with a body that is
not a valid response (an upstream proxy's error page, a cut-off body, the wrong JSON), to test the broker's
``upstream_invalid_response`` handling."""

from typing import Any

import orjson

SIM_GARBAGE_HTML = "__sim_garbage_html__"  #: an HTML error page
SIM_GARBAGE_TRUNCATED = "__sim_garbage_truncated__"  #: the first half of the real answer
SIM_GARBAGE_ARRAY = "__sim_garbage_array__"  #: the real answer inside a JSON array
SIM_GARBAGE_USAGE = "__sim_garbage_usage__"  #: the real answer with ``usage`` a string
SIM_GARBAGE_SHORT = "__sim_garbage_short__"  #: an embeddings answer missing its last vector
HTML_PAGE = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"


def garbage(raw: bytes, payload: dict[str, Any]) -> bytes | None:
    """The garbage body a marker in the request ``raw`` asks for instead of ``payload``; None without one."""
    if SIM_GARBAGE_HTML.encode() in raw:
        return HTML_PAGE
    real = orjson.dumps(payload)
    if SIM_GARBAGE_TRUNCATED.encode() in raw:
        return real[: len(real) // 2]
    if SIM_GARBAGE_ARRAY.encode() in raw:
        return orjson.dumps([payload])
    if SIM_GARBAGE_USAGE.encode() in raw:
        return orjson.dumps({**payload, "usage": "plenty"})
    if SIM_GARBAGE_SHORT.encode() in raw and isinstance(payload.get("data"), list):
        return orjson.dumps({**payload, "data": payload["data"][:-1]})
    return None
