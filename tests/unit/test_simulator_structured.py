"""The simulator honours ``response_format``: JSON replies, an enum value chosen from the messages' hash."""

import json
from collections import Counter

from simulator.responses import prepare, render
from simulator.structured import sample_schema


def reply(body: dict[str, object]) -> tuple[str, int]:
    rendered = render(prepare("/v1/chat/completions", body, max_inputs=1), ident="x", now=0, embedding_dim=8)
    content = rendered.payload["choices"][0]["message"]["content"]
    assert rendered.payload["usage"]["completion_tokens"] == rendered.completion_tokens > 0
    return content, rendered.completion_tokens


def label_body(text: str, labels: list[str]) -> dict[str, object]:
    schema = {"type": "object", "properties": {"label": {"type": "string", "enum": labels}},
              "required": ["label"], "additionalProperties": False}
    return {"model": "m", "messages": [{"role": "user", "content": text}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "label", "strict": True,
                                                                       "schema": schema}}}


def test_json_schema_enum_is_chosen_deterministically_from_the_messages() -> None:
    labels = ["a", "b", "c"]
    picks = [json.loads(reply(label_body(f"text {i}", labels))[0]) for i in range(300)]
    assert all(set(p) == {"label"} and p["label"] in labels for p in picks)
    assert min(Counter(p["label"] for p in picks).values()) > 60  # spread over the set
    assert [json.loads(reply(label_body(f"text {i}", labels))[0]) for i in range(300)] == picks


def test_json_object_and_plain_text_and_truncation() -> None:
    body: dict[str, object] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert isinstance(json.loads(reply({**body, "response_format": {"type": "json_object"}})[0]), dict)
    assert reply({**body, "response_format": {"type": "text"}})[0].startswith("Simulated reply")
    assert reply(body)[0].startswith("Simulated reply")
    content, tokens = reply({**label_body("x", ["long-label-" * 5]), "max_tokens": 2})
    assert tokens == 2 and len(content) == 8


def test_sample_schema_covers_nested_shapes() -> None:
    schema = {"type": "object", "properties": {
        "tags": {"type": "array", "items": {"enum": ["x", "y"]}}, "score": {"type": "number"},
        "ok": {"type": "boolean"}, "name": {"type": "string"}, "maybe": {"type": ["string", "null"]}}}
    assert sample_schema(schema, 1) == {"tags": ["y"], "score": 1.0, "ok": True, "name": "simulated", "maybe": None}
    assert sample_schema("not a schema", 0) is None


def test_an_enum_answers_the_label_the_text_names_first() -> None:
    labels = ["positive", "negative", "neutral"]
    assert json.loads(reply(label_body("Great phone, positive experience overall", labels))[0]) == {
        "label": "positive"}
    assert json.loads(reply(label_body("NEGATIVE. Was positive at first, then not.", labels))[0]) == {
        "label": "negative"}  # the first mention wins, in any case
    assert json.loads(reply(label_body("meh, neutral-ish", labels))[0]) == {"label": "neutral"}
    unnamed = [json.loads(reply(label_body("positively nonnegative", labels))[0]) for _ in range(3)]
    assert unnamed[0]["label"] in labels and unnamed == [unnamed[0]] * 3  # no whole-word mention: by hash, stable
