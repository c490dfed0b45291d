"""``broker label``: a CSV labelled through one structured-output batch, against the simulator."""

import csv
import json
from collections import Counter
from pathlib import Path

from cli.label import Answer, parse_answer, write_labelled
from simulator.responses import SIM_ERROR_400_MARKER
from tests.cli.conftest import Cli, assert_clean_failure
from tests.harness import CHAT_MODEL

LABELS = ["positive", "negative", "neutral"]


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_label_500_rows_writes_a_valid_label_raw_answer_and_cost_on_every_row(cli: Cli, tmp_path: Path) -> None:
    rows = [[str(i), f"Review #{i}: \"quite\" good, café {i % 7}\nsecond line", f"shop-{i % 3}"] for i in range(500)]
    data = write_csv(tmp_path / "reviews.csv", [["id", "body", "shop"], *rows])

    result = cli("label", str(data), "--labels", " positive, negative ,neutral", "--prompt", "Sentiment of the review.",
                 "--model", CHAT_MODEL, "--text-column", "body", "--window", "1h")

    assert result.exit_code == 0, result.output
    assert "500/500" in result.stderr
    labelled = read_csv(tmp_path / "reviews.labelled.csv")
    assert [r["id"] for r in labelled] == [r[0] for r in rows]
    assert [(r["body"], r["shop"]) for r in labelled] == [(r[1], r[2]) for r in rows]  # original columns intact
    assert list(labelled[0]) == ["id", "body", "shop", "label", "raw_answer", "cost_usd"]
    for row in labelled:
        assert row["label"] in LABELS
        assert json.loads(row["raw_answer"]) == {"label": row["label"]}
        assert float(row["cost_usd"]) > 0
    tally = Counter(r["label"] for r in labelled)
    assert set(tally) == set(LABELS) and min(tally.values()) > 100  # the hash spreads rows over the label set
    for label, count in tally.items():
        assert f"{label} │ {count}" in " ".join(result.stdout.split())
    again = {r["body"]: r["label"] for r in labelled}  # same text, same label: deterministic
    assert all(again[r["body"]] == r["label"] for r in labelled)

    client = cli.client()
    batch = client.batches.list(limit=1).data[0]
    assert (batch.status, batch.completion_window, batch.endpoint) == ("completed", "1h", "/v1/chat/completions")
    first = json.loads(client.files.content(batch.input_file_id).text.splitlines()[0])
    assert first["body"]["messages"][1] == {"role": "user", "content": rows[0][1]}
    system = first["body"]["messages"][0]["content"]
    assert system.startswith("Sentiment of the review.") and "positive, negative, neutral" in system
    assert first["body"]["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "label", "strict": True, "schema": {
            "type": "object", "properties": {"label": {"type": "string", "enum": LABELS}},
            "required": ["label"], "additionalProperties": False}}}


def test_failed_rows_get_no_label_and_the_error_as_raw_answer(cli: Cli, tmp_path: Path) -> None:
    data = write_csv(tmp_path / "d.csv", [["text"], ["fine"], [f"broken {SIM_ERROR_400_MARKER}"], ["also fine"]])
    result = cli("label", str(data), "--labels", "a,b", "--prompt", "Pick one.", "--model", CHAT_MODEL,
                 "-o", str(tmp_path / "out.csv"))
    assert result.exit_code == 0, result.output
    rows = read_csv(tmp_path / "out.csv")
    assert [r["label"] in ("a", "b") for r in rows] == [True, False, True]
    assert rows[1]["label"] == "" and rows[1]["raw_answer"].startswith("[error] ")
    assert "(request failed) │ 1" in " ".join(result.stdout.split())


def test_an_answer_outside_the_label_set_keeps_the_raw_answer(tmp_path: Path) -> None:
    assert parse_answer('{"label": "b"}', ["a", "b"]) == "b"
    assert parse_answer("B", ["a", "b"]) == "b"
    for raw in ('{"label": "maybe"}', '{"other": "a"}', "I think a", "", '["a"]', '{"label": 3}', "{bad json"):
        assert parse_answer(raw, ["a", "b"]) == "", raw
    data = write_csv(tmp_path / "d.csv", [["text", "label"], ["x", "old"], ["y", "old"]])
    answers = {"row-0": Answer("a", '{"label":"a"}', 1e-6), "row-1": Answer("", "I think a", 2e-6)}
    tally = write_labelled(data, tmp_path / "out.csv", answers)
    assert tally == Counter({"a": 1, "": 1})
    rows = read_csv(tmp_path / "out.csv")
    assert rows == [{"text": "x", "label": "a", "raw_answer": '{"label":"a"}', "cost_usd": "0.000001"},
                    {"text": "y", "label": "", "raw_answer": "I think a", "cost_usd": "0.000002"}]


def test_label_input_problems_are_clear_messages(cli: Cli, tmp_path: Path) -> None:
    data = write_csv(tmp_path / "d.csv", [["id", "review"], ["1", "good"]])
    args = ("--labels", "a,b", "--prompt", "p", "--model", CHAT_MODEL)
    assert_clean_failure(cli("label", str(data), *args), "has no column 'text' (columns: id, review)")
    assert_clean_failure(cli("label", str(data), *args[:1], " , ", *args[2:]), "--labels needs at least one label")
    unknown = cli("label", str(data), "--labels", "a,b", "--prompt", "p", "--model", "gpt-99", "--text-column",
                  "review")
    assert_clean_failure(unknown, "gpt-99")
    assert not (tmp_path / "d.labelled.csv").exists()
