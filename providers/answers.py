"""Is an upstream's success answer a valid response for its endpoint?

A 200 whose body is an HTML page, truncated JSON, a JSON array, holds ``usage`` that is not token counts, lacks
the list its endpoint returns, or (embeddings) holds fewer vectors than inputs is not a result: it is a
:class:`~broker.errors.RetryableUpstream` ``upstream_invalid_response`` whose message quotes the first bytes of what
came back, so the error file says what the upstream sent once the attempts run out.
"""

from typing import Any

import orjson

from broker.errors import RetryableUpstream

SHOWN_BYTES = 200  #: bytes of an invalid answer quoted in the error message
RESULT_LISTS = {
    "/v1/chat/completions": "choices", "/v1/completions": "choices", "/v1/embeddings": "data",
    "/v1/responses": "output", "/v1/moderations": "results",
}
"""The list each endpoint's answer carries its results in."""


def invalid_answer(reason: str, content: bytes, status: int = 200) -> RetryableUpstream:
    """The error for an answer that is not a valid response: ``reason`` and the answer's first bytes."""
    start = content[:SHOWN_BYTES].decode(errors="replace")
    more = "…" if len(content) > SHOWN_BYTES else ""
    return RetryableUpstream(f"Upstream answered HTTP {status} with an invalid response ({reason}); it began: "
                             f"{start!r}{more}", code="upstream_invalid_response")


def parse_answer(endpoint: str, content: bytes, status: int = 200) -> dict[str, Any]:
    """The answer as a JSON object fit for ``endpoint``; else :func:`invalid_answer` is raised."""
    try:
        parsed = orjson.loads(content)
    except orjson.JSONDecodeError:
        raise invalid_answer("not JSON", content, status) from None
    if not isinstance(parsed, dict):
        raise invalid_answer("not a JSON object", content, status)
    if (problem := _problem(endpoint, parsed)) is not None:
        raise invalid_answer(problem, content, status)
    return parsed


def _problem(endpoint: str, body: dict[str, Any]) -> str | None:
    usage = body.get("usage")
    if usage is not None:
        if not isinstance(usage, dict):
            return "usage is not an object"
        for key, value in usage.items():
            if key.endswith("_tokens") and not _count(value):
                return f"usage.{key} is not a token count"
            if key.endswith("_details") and value is not None and not isinstance(value, dict):
                return f"usage.{key} is not an object"
    key = RESULT_LISTS.get(endpoint)
    if key is not None and not isinstance(body.get(key), list):
        return f"no '{key}' list"
    if key == "data" and not all(isinstance(item, dict) and isinstance(item.get("index", 0), int)
                                 for item in body["data"]):
        return "an embedding is not an object with an integer index"
    return None


def _count(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool) and value >= 0)


def input_count(body: dict[str, Any]) -> int | None:
    """How many embeddings an embeddings request asks for (None when its input is of no shape we count)."""
    value = body.get("input")
    if isinstance(value, str) or (isinstance(value, list) and value and all(isinstance(v, int) for v in value)):
        return 1  # one text, or one text as token ids
    if isinstance(value, list):
        return len(value)
    return None


def check_vectors(request: dict[str, Any], answer: dict[str, Any], content: bytes) -> None:
    """Raise :func:`invalid_answer` when an embeddings answer holds another number of vectors than inputs."""
    expected, data = input_count(request), answer.get("data")
    if expected is not None and isinstance(data, list) and len(data) != expected:
        raise invalid_answer(f"{len(data)} embeddings for {expected} inputs", content)
