"""The simulator's answers parse as the installed ``openai`` SDK's types, and their ``usage`` carries every field
those types declare (as OpenAI's answers do): a new SDK release that adds one fails here until the simulator
follows."""

from collections.abc import Iterator
from types import UnionType
from typing import Any, Union, get_args, get_origin

import httpx
import pydantic
import pytest
from openai.types import Completion, CreateEmbeddingResponse, ModerationCreateResponse
from openai.types.chat import ChatCompletion
from openai.types.responses import Response

from simulator import SimulatorConfig, SimulatorServer

REQUESTS: dict[str, tuple[type[pydantic.BaseModel], dict[str, Any]]] = {
    "/chat/completions": (ChatCompletion, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}),
    "/completions": (Completion, {"model": "gpt-3.5-turbo-instruct", "prompt": ["one", "two"]}),
    "/embeddings": (CreateEmbeddingResponse, {"model": "text-embedding-3-small", "input": ["a", "b"]}),
    "/responses": (Response, {"model": "gpt-4o-mini", "input": "hello", "instructions": "be brief"}),
    "/moderations": (ModerationCreateResponse, {"model": "omni-moderation-latest", "input": "a kind text"}),
}


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with SimulatorServer(SimulatorConfig()) as sim, httpx.Client(base_url=sim.base_url, timeout=10) as client:
        yield client


def _model_of(annotation: Any) -> type[pydantic.BaseModel] | None:
    """The pydantic model inside ``X``, ``X | None`` or ``Optional[X]``, if any."""
    candidates = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else (annotation,)
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, pydantic.BaseModel):
            return candidate
    return None


def missing_fields(model: type[pydantic.BaseModel], data: dict[str, Any], path: str) -> list[str]:
    """Every field ``model`` declares that ``data`` lacks, nested models included."""
    missing = []
    for name, info in model.model_fields.items():
        key = info.alias or name
        if key not in data:
            missing.append(f"{path}.{key}")
        elif isinstance(data[key], dict) and (inner := _model_of(info.annotation)) is not None:
            missing += missing_fields(inner, data[key], f"{path}.{key}")
    return missing


@pytest.mark.parametrize("path", sorted(REQUESTS))
def test_every_endpoint_answers_what_the_sdk_types_declare(http: httpx.Client, path: str) -> None:
    model, body = REQUESTS[path]
    answer = http.post(path, json=body)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    parsed = model.model_validate(data)  # raises on a missing required field or a wrong type
    usage = getattr(parsed, "usage", None)
    if usage is not None:
        assert missing_fields(type(usage), data["usage"], "usage") == []
