"""Deterministic embedding vectors and moderation verdicts derived from sha256 digests."""

from __future__ import annotations

import base64
import hashlib
import math
import re
import sys
from array import array
from typing import Any

MODERATION_CATEGORIES: tuple[str, ...] = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
"""OpenAI's moderation category names (omni-moderation)."""

FLAGGED_SCORE = 0.93  #: violence score of an input that is flagged
_VIOLENCE = re.compile(r"\bviolence\b", re.IGNORECASE)


def unit_vector(digest: bytes, dim: int) -> array[float]:
    """A unit-norm float32 vector of ``dim`` components, a pure function of ``digest``.

    Components are the digest's shake-256 expansion read as int16, then normalised: cheap (no
    per-component PRNG call) and reproducible across runs and machines.
    """
    raw = array("h", hashlib.shake_256(digest).digest(2 * dim))
    if sys.byteorder == "big":
        raw.byteswap()
    norm = math.sqrt(math.fsum(x * x for x in raw)) or 1.0
    inv = 1.0 / norm
    return array("f", [x * inv for x in raw])


def embedding_items(digests: list[bytes], dim: int, as_base64: bool) -> list[dict[str, Any]]:
    """The ``data`` array of an embeddings response: floats, or base64 of little-endian float32."""
    items: list[dict[str, Any]] = []
    for index, digest in enumerate(digests):
        vector = unit_vector(digest, dim)
        embedding: Any
        if as_base64:
            if sys.byteorder == "big":
                vector.byteswap()
            embedding = base64.b64encode(vector.tobytes()).decode("ascii")
        else:
            embedding = vector.tolist()
        items.append({"object": "embedding", "index": index, "embedding": embedding})
    return items


def moderation_result(text: str, digest: bytes) -> dict[str, Any]:
    """One moderation result: flagged for violence exactly when the text contains the word "violence"."""
    violent = _VIOLENCE.search(text) is not None
    scores = {name: round((digest[i] + 1) / 256 * 1e-3, 8) for i, name in enumerate(MODERATION_CATEGORIES)}
    categories = dict.fromkeys(MODERATION_CATEGORIES, False)
    if violent:
        categories["violence"] = True
        scores["violence"] = FLAGGED_SCORE
    return {
        "flagged": violent,
        "categories": categories,
        "category_scores": scores,
        "category_applied_input_types": {name: ["text"] for name in MODERATION_CATEGORIES},
    }
