"""The base of every request body we parse, and OpenAI's documented limits on request fields.

Unknown fields are refused (OpenAI answers 400 "Unrecognized request argument supplied") and no string may hold
a NUL character (PostgreSQL text cannot store one, and no identifier or URL legitimately has one).
"""

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

MAX_METADATA_PAIRS = 16  #: as OpenAI
MAX_METADATA_KEY_CHARS = 64  #: as OpenAI
MAX_METADATA_VALUE_CHARS = 512  #: as OpenAI
MAX_PRIORITY = 1_000_000  #: an integer priority lies within +-this (a rank, stored in a 32-bit column)
MAX_TIMESTAMP = 2**31 - 1  #: unix times are stored in 32-bit columns: 2038-01-19T03:14:07Z is the latest


def _has_nul(value: Any) -> bool:
    """Whether a NUL character hides in ``value`` or anything it holds (iteratively: no recursion limit)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


class RequestBody(BaseModel):
    """A request body: unknown fields refused, NUL characters refused in every string field."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if _has_nul(value):
            raise ValueError("Null characters (\\u0000) are not allowed")
        return value


def _check_metadata(metadata: dict[str, str] | None) -> dict[str, str] | None:
    if metadata is None:
        return None
    if len(metadata) > MAX_METADATA_PAIRS:
        raise ValueError(f"metadata may hold at most {MAX_METADATA_PAIRS} key-value pairs")
    for key, value in metadata.items():
        if len(key) > MAX_METADATA_KEY_CHARS:
            raise ValueError(f"metadata keys may be at most {MAX_METADATA_KEY_CHARS} characters long")
        if len(value) > MAX_METADATA_VALUE_CHARS:
            raise ValueError(f"metadata values may be at most {MAX_METADATA_VALUE_CHARS} characters long")
    return metadata


#: OpenAI's metadata: at most 16 pairs, keys up to 64 characters, values up to 512
Metadata = Annotated[dict[str, str] | None, AfterValidator(_check_metadata)]
#: a spending cap in USD: zero or more, finite
CostCap = Annotated[float | None, Field(ge=0, allow_inf_nan=False)]
