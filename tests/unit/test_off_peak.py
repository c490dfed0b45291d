"""Off-peak windows: which instants they hold, and when the next one opens (UTC, past midnight, by weekday)."""

import datetime as dt

import pytest
from pydantic import ValidationError

from broker.catalogue import OffPeakWindow


def at(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


def test_a_window_past_midnight_belongs_to_the_day_it_starts() -> None:
    friday_nights = OffPeakWindow(days=["fri"], start="22:00", end="06:00", multiplier=0.5)
    span = (at("2026-11-27T22:00:00"), at("2026-11-28T06:00:00"))  # Friday 22:00 to Saturday 06:00
    assert friday_nights.span_at(at("2026-11-28T05:59:00")) == span
    assert friday_nights.span_at(at("2026-11-28T06:00:00")) is None
    assert friday_nights.span_at(at("2026-11-27T21:59:00")) is None
    assert friday_nights.next_span(at("2026-11-25T12:00:00")) == span  # a Wednesday: next is Friday's
    assert friday_nights.next_span(at("2026-11-28T07:00:00"))[0] == at("2026-12-04T22:00:00")  # type: ignore[index]


def test_equal_start_and_end_is_the_whole_day_and_seconds_are_allowed() -> None:
    weekends = OffPeakWindow(days=["Saturday", "sun"], start="00:00", end="00:00", multiplier=0.4)
    assert weekends.days == ["sat", "sun"]
    assert weekends.span_at(at("2026-11-29T23:59:59")) == (at("2026-11-29T00:00:00"), at("2026-11-30T00:00:00"))
    short = OffPeakWindow(start="10:00:30", end="10:00:45", multiplier=0.9)
    assert short.next_span(at("2026-11-25T10:00:00")) == (at("2026-11-25T10:00:30"), at("2026-11-25T10:00:45"))


@pytest.mark.parametrize("fields", [{"days": ["someday"]}, {"start": "25:00"}, {"multiplier": 0.0},
                                    {"multiplier": 1.5}])
def test_bad_windows_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        OffPeakWindow.model_validate({"start": "01:00", "end": "05:00", "multiplier": 0.5, **fields})
