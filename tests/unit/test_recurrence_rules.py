"""The calendar adapter: rule parsing and normalisation, and next occurrences on the wall clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

import pytest
from dateutil.rrule import rrule, rrulestr
from hypothesis import given, settings
from hypothesis import strategies as st

from todo_api.adapters.calendar.rrule import RruleRecurrences
from todo_api.domain.errors import InvalidInput
from todo_api.domain.overview import today_in
from todo_api.domain.recurrence import Recurrence, parse_duration

RULES = RruleRecurrences()
BERLIN, NEW_YORK = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")


def series(rule: str, zone: str, start: datetime) -> Recurrence:
    return Recurrence(RULES.normalised(rule, zone), zone, "due", start)


def following(recurrence: Recurrence, count: int) -> list[datetime]:
    found, at = [], recurrence.start
    assert at is not None
    for _ in range(count):
        nxt = RULES.next_after(recurrence, at)
        if nxt is None:
            break
        found.append(nxt)
        at = nxt
    return found


def test_a_rule_is_stored_normalised() -> None:
    assert RULES.normalised("rrule:byday=-1fr;freq=monthly;interval=1", "UTC") == "FREQ=MONTHLY;BYDAY=-1FR"


@pytest.mark.parametrize(
    ("rule", "zone", "names"),
    [
        ("FREQ=HOURLY", "UTC", "FREQ"),
        ("FREQ=DAILY;BYHOUR=9", "UTC", "BYHOUR"),
        ("FREQ=WEEKLY;BYDAY=1MO", "UTC", "BYDAY"),
        ("FREQ=MONTHLY;BYMONTHDAY=32", "UTC", "BYMONTHDAY"),
        ("FREQ=DAILY;COUNT=3;UNTIL=20270101", "UTC", "COUNT"),
        ("FREQ=DAILY;BYSETPOS=1", "UTC", "BYSETPOS"),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "UTC", "matches no date"),
        ("FREQ=DAILY", "Mars/Olympus", "Mars/Olympus"),
        ("FREQ=DAILY;;", "UTC", "NAME=VALUE"),
    ],
)
def test_an_unsupported_or_malformed_rule_is_refused_naming_the_part(rule: str, zone: str, names: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        RULES.normalised(rule, zone)
    assert refused.value.code == "invalid_recurrence"
    assert names in refused.value.message


def test_a_daily_berlin_task_stays_at_its_wall_clock_time_across_spring_forward() -> None:
    start = datetime(2027, 3, 26, 9, 30, tzinfo=BERLIN)
    local = [moment.astimezone(BERLIN) for moment in following(series("FREQ=DAILY", "Europe/Berlin", start), 3)]
    assert [(m.day, m.hour, m.minute) for m in local] == [(27, 9, 30), (28, 9, 30), (29, 9, 30)]
    assert [m.utcoffset() for m in local] == [timedelta(hours=1), timedelta(hours=2), timedelta(hours=2)]


def test_an_occurrence_in_the_spring_forward_gap_lands_an_hour_later_then_returns() -> None:
    start = datetime(2027, 3, 27, 2, 30, tzinfo=BERLIN)
    local = [moment.astimezone(BERLIN) for moment in following(series("FREQ=DAILY", "Europe/Berlin", start), 2)]
    assert (local[0].day, local[0].hour, local[0].minute) == (28, 3, 30)
    assert (local[1].day, local[1].hour, local[1].minute) == (29, 2, 30)


def test_a_repeated_autumn_time_is_its_first_instance() -> None:
    start = datetime(2027, 10, 30, 2, 30, tzinfo=BERLIN)
    fold_day = following(series("FREQ=DAILY", "Europe/Berlin", start), 1)[0]
    assert fold_day == datetime(2027, 10, 31, 0, 30, tzinfo=UTC)  # 02:30 CEST, not 02:30 CET


def test_new_york_keeps_0930_across_its_own_changes() -> None:
    start = datetime(2027, 3, 13, 9, 30, tzinfo=NEW_YORK)
    local = [m.astimezone(NEW_YORK) for m in following(series("FREQ=DAILY", "America/New_York", start), 2)]
    assert [(m.hour, m.minute) for m in local] == [(9, 30), (9, 30)]
    assert local[0].astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=23)  # the spring-forward day is short


def test_the_31st_skips_short_months() -> None:
    start = datetime(2027, 1, 31, 12, tzinfo=UTC)
    days = [m.date().isoformat() for m in following(series("FREQ=MONTHLY;BYMONTHDAY=31", "UTC", start), 3)]
    assert days == ["2027-03-31", "2027-05-31", "2027-07-31"]


def test_the_last_day_of_the_month_with_a_negative_month_day() -> None:
    start = datetime(2028, 1, 31, 12, tzinfo=UTC)
    days = [m.date().isoformat() for m in following(series("FREQ=MONTHLY;BYMONTHDAY=-1", "UTC", start), 2)]
    assert days == ["2028-02-29", "2028-03-31"]


def test_a_leap_day_recurs_every_four_years() -> None:
    start = datetime(2028, 2, 29, 8, tzinfo=UTC)
    days = [m.date().isoformat() for m in following(series("FREQ=YEARLY", "UTC", start), 2)]
    assert days == ["2032-02-29", "2036-02-29"]


def test_the_last_friday_of_the_month() -> None:
    start = datetime(2027, 1, 29, 17, tzinfo=UTC)
    days = [m.date().isoformat() for m in following(series("FREQ=MONTHLY;BYDAY=-1FR", "UTC", start), 3)]
    assert days == ["2027-02-26", "2027-03-26", "2027-04-30"]


def test_bysetpos_picks_the_last_workday_of_the_month() -> None:
    start = datetime(2027, 1, 29, 9, tzinfo=UTC)
    rule = "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1"
    days = [m.date().isoformat() for m in following(series(rule, "UTC", start), 2)]
    assert days == ["2027-02-26", "2027-03-31"]


def test_until_in_another_zone_is_read_in_utc() -> None:
    # Auckland is UTC+13 in January: 09:00 local on the 3rd is 20:00Z on the 2nd.
    start = datetime(2027, 1, 1, 9, tzinfo=ZoneInfo("Pacific/Auckland"))
    recurrence = series("FREQ=DAILY;UNTIL=20270102T200000Z", "Pacific/Auckland", start)
    assert len(following(recurrence, 5)) == 2  # the 2nd and the 3rd, local


def test_count_exhausts_the_series() -> None:
    recurrence = series("FREQ=WEEKLY;COUNT=3", "UTC", datetime(2027, 1, 4, 9, tzinfo=UTC))
    assert len(following(recurrence, 10)) == 2  # the start is the first of the three
    assert RULES.next_after(recurrence, datetime(2027, 1, 18, 9, tzinfo=UTC)) is None


def test_durations_are_iso_8601_without_months() -> None:
    assert parse_duration("PT15M") == timedelta(minutes=15)
    assert parse_duration("P1DT2H") == timedelta(days=1, hours=2)
    for bad in ("P1M", "PT", "15M", "P"):
        with pytest.raises(InvalidInput):
            parse_duration(bad)


_days = st.lists(st.sampled_from(["MO", "TU", "WE", "TH", "FR", "SA", "SU"]), min_size=1, max_size=3, unique=True)


@st.composite
def supported_rules(draw: st.DrawFn) -> str:
    freq = draw(st.sampled_from(["DAILY", "WEEKLY", "MONTHLY", "YEARLY"]))
    parts = [f"FREQ={freq}", f"INTERVAL={draw(st.integers(1, 4))}"]
    if freq == "WEEKLY" or draw(st.booleans()):
        parts.append("BYDAY=" + ",".join(draw(_days)))
    if freq in ("MONTHLY", "YEARLY") and draw(st.booleans()):
        parts.append(f"BYMONTHDAY={draw(st.sampled_from([1, 15, 28, -1]))}")
    if draw(st.booleans()):
        parts.append(f"COUNT={draw(st.integers(1, 6))}")
    return ";".join(parts)


@settings(max_examples=60, deadline=None)
@given(
    rule=supported_rules(),
    zone=st.sampled_from(["Europe/Berlin", "America/New_York", "UTC", "Australia/Lord_Howe"]),
    start=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2030, 1, 1)),
)
def test_next_occurrences_agree_with_dateutils_own_expansion(rule: str, zone: str, start: datetime) -> None:
    local_start = start.replace(tzinfo=ZoneInfo(zone), microsecond=0)
    try:
        recurrence = series(rule, zone, local_start.astimezone(UTC))
    except InvalidInput:
        return  # a combination that matches no date: refused, nothing to compare
    expansion = rrulestr(recurrence.rule, dtstart=local_start)
    assert isinstance(expansion, rrule)
    expected = [
        moment.astimezone(UTC)
        for moment in islice(expansion, 8)
        if moment.astimezone(UTC) > local_start.astimezone(UTC)
    ]
    ours = following(recurrence, len(expected) + 1)
    assert ours[: len(expected)] == expected


def test_an_occurrence_past_the_last_instant_of_the_calendar_ends_the_series() -> None:
    late = series("FREQ=YEARLY", "America/New_York", datetime(9999, 1, 1, 3, tzinfo=UTC))  # Dec 31 22:00 local
    assert RULES.next_after(late, datetime(9999, 1, 1, 3, tzinfo=UTC)) is None


@pytest.mark.parametrize("name", ["", "Mars/Base", "../../etc/passwd", "/etc/localtime", "Europe/" + "x" * 60])
def test_a_rule_and_a_day_refuse_the_same_time_zones_each_in_its_own_code(name: str) -> None:
    with pytest.raises(InvalidInput) as unknown_day:
        today_in(name, datetime(2027, 1, 1, tzinfo=UTC))
    with pytest.raises(InvalidInput) as unknown_rule:
        RULES.normalised("FREQ=DAILY", name)
    assert (unknown_day.value.code, unknown_rule.value.code) == ("unknown_time_zone", "invalid_recurrence")
    assert unknown_rule.value.message == unknown_day.value.message
