"""Structured outputs: chat replies that honour ``response_format`` (``json_schema`` / ``json_object``).

The reply is a JSON text chosen deterministically from the request's digest, so the same messages always get
the same answer; an ``enum`` picks one of its values, which is what a labelling batch needs.
"""

from __future__ import annotations

from typing import Any

import orjson

SCHEMA_SAMPLES: dict[str, Any] = {"string": "simulated", "integer": 1, "number": 1.0, "boolean": True}
"""The value given to a schema of each plain type (without an ``enum``)."""


def sample_schema(schema: Any, seed: int) -> Any:
    """A value matching a (simple) JSON schema; an ``enum`` picks one of its values by ``seed``."""
    if not isinstance(schema, dict):
        return None
    choices = schema.get("enum")
    if isinstance(choices, list) and choices:
        return choices[seed % len(choices)]
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties")
        items = properties.items() if isinstance(properties, dict) else ()
        return {name: sample_schema(sub, seed) for name, sub in items}
    if kind == "array":
        return [sample_schema(schema.get("items"), seed)]
    return SCHEMA_SAMPLES.get(kind) if isinstance(kind, str) else None


def structured_text(body: dict[str, Any], digest: bytes, index: int) -> str | None:
    """The JSON reply for a chat request's ``response_format``; None when it asks for plain text."""
    fmt = body.get("response_format")
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "json_schema":
        spec = fmt.get("json_schema") if isinstance(fmt, dict) else None
        schema = spec.get("schema") if isinstance(spec, dict) else None
        value = sample_schema(schema, int.from_bytes(digest[:8], "big") + index)
    elif kind == "json_object":
        value = {"reply": digest.hex()[:8] if index == 0 else f"{digest.hex()[:8]}-{index}"}
    else:
        return None
    return orjson.dumps(value).decode()
