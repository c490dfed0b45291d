"""Structured outputs: chat replies that honour ``response_format`` (``json_schema`` / ``json_object``).

The reply is a JSON text chosen deterministically, so the same messages always get the same answer. An ``enum``
answers the value the last user message names (first mention wins: "great, positive!" is labelled ``positive``),
else one picked by the request's digest; a labelling batch run against the simulator thus gets labels that follow
its texts.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

SCHEMA_SAMPLES: dict[str, Any] = {"string": "simulated", "integer": 1, "number": 1.0, "boolean": True}
"""The value given to a schema of each plain type (without an ``enum``)."""


def named_choice(choices: list[Any], text: str) -> Any:
    """The choice ``text`` mentions first (as a whole word, any case), or None."""
    found = []
    for choice in choices:
        if isinstance(choice, str) and choice.strip():
            match = re.search(rf"(?<!\w){re.escape(choice.strip())}(?!\w)", text, re.IGNORECASE)
            if match:
                found.append((match.start(), choice))
    return min(found, key=lambda hit: hit[0])[1] if found else None


def sample_schema(schema: Any, seed: int, hint: str = "") -> Any:
    """A value matching a (simple) JSON schema; an ``enum`` answers the value ``hint`` names, else one by ``seed``."""
    if not isinstance(schema, dict):
        return None
    choices = schema.get("enum")
    if isinstance(choices, list) and choices:
        named = named_choice(choices, hint)
        return named if named is not None else choices[seed % len(choices)]
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties")
        items = properties.items() if isinstance(properties, dict) else ()
        return {name: sample_schema(sub, seed, hint) for name, sub in items}
    if kind == "array":
        return [sample_schema(schema.get("items"), seed, hint)]
    return SCHEMA_SAMPLES.get(kind) if isinstance(kind, str) else None


def structured_text(body: dict[str, Any], digest: bytes, index: int, hint: str = "") -> str | None:
    """The JSON reply for a chat request's ``response_format`` (``hint``: the last user message); None when it asks
    for plain text."""
    fmt = body.get("response_format")
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "json_schema":
        spec = fmt.get("json_schema") if isinstance(fmt, dict) else None
        schema = spec.get("schema") if isinstance(spec, dict) else None
        value = sample_schema(schema, int.from_bytes(digest[:8], "big") + index, hint)
    elif kind == "json_object":
        value = {"reply": digest.hex()[:8] if index == 0 else f"{digest.hex()[:8]}-{index}"}
    else:
        return None
    return orjson.dumps(value).decode()
