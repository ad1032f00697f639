"""The `RecurrenceRules` port on python-dateutil's rrule and the standard library's zoneinfo.

We parse and normalise the rule ourselves (to accept exactly the supported parts and name the
offending one), then let dateutil expand it. dateutil expands on the wall clock of DTSTART's zone:
an occurrence that falls in a spring-forward gap keeps `fold=0`, which zoneinfo reads with the
offset before the gap (02:30 becomes 03:30 local, as RFC 5545 says), and a repeated autumn time is
its first instance. Instants are compared in UTC, never as wall times.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from dateutil.rrule import rrule, rrulestr

from todo_api.domain.errors import InvalidInput
from todo_api.domain.recurrence import MAX_RULE_CHARS, Recurrence, invalid_recurrence
from todo_api.domain.time_zones import zone_named

FREQUENCIES: Final = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
WEEKDAYS: Final = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_ORDER: Final = ("FREQ", "INTERVAL", "BYMONTH", "BYMONTHDAY", "BYDAY", "BYSETPOS", "COUNT", "UNTIL", "WKST")
_BYDAY = re.compile(r"([+-]?)(\d{1,2})?(MO|TU|WE|TH|FR|SA|SU)", re.ASCII)
_INTEGER = re.compile(r"[+-]?\d{1,4}", re.ASCII)
_UNTIL = re.compile(r"(\d{8})(?:T(\d{6})(Z?))?", re.ASCII)
_SEARCH_LIMIT = 10_000  # candidates looked at for one next occurrence: a guard, never reached by a valid rule


def zone_of(name: str) -> ZoneInfo:
    """The rule's zone; an unknown one is the rule's fault, so `invalid_recurrence` naming it."""
    try:
        return zone_named(name)
    except InvalidInput as unknown:
        raise invalid_recurrence(unknown.message, field="recurrence.timezone") from None


def _numbers(name: str, value: str, low: int, high: int, *, negative: bool) -> str:
    numbers = []
    for item in value.split(","):
        if not _INTEGER.fullmatch(item):
            raise invalid_recurrence(f"{name}={value}: {item!r} is not a number.")
        number = int(item)
        if not (low <= abs(number) <= high) or (number < 0 and not negative):
            span = f"±{low}..{high}" if negative else f"{low}..{high}"
            raise invalid_recurrence(f"{name}={value}: {item} is outside {span}.")
        numbers.append(str(number))
    return ",".join(numbers)


def _days(value: str, freq: str) -> str:
    days = []
    for item in value.split(","):
        match = _BYDAY.fullmatch(item)
        if match is None:
            raise invalid_recurrence(f"BYDAY={value}: {item!r} is not a weekday (MO..SU, with an ordinal like 1MO).")
        sign, ordinal, day = match.groups()
        if ordinal is None:
            if sign:
                raise invalid_recurrence(f"BYDAY={value}: {item!r} has a sign but no ordinal.")
            days.append(day)
            continue
        if freq not in ("MONTHLY", "YEARLY"):
            raise invalid_recurrence(f"BYDAY={value}: ordinals like {item!r} need FREQ=MONTHLY or YEARLY.")
        number = int(ordinal)
        if not 1 <= number <= (5 if freq == "MONTHLY" else 53):
            raise invalid_recurrence(f"BYDAY={value}: the ordinal of {item!r} is out of range.")
        days.append(f"{'-' if sign == '-' else ''}{number}{day}")
    return ",".join(days)


def _until(value: str, zone: ZoneInfo) -> str:
    """UNTIL in UTC, as RFC 5545 wants it with a zoned DTSTART: a date is the end of that day in
    the rule's zone, a local time is read in it."""
    match = _UNTIL.fullmatch(value)
    if match is None:
        raise invalid_recurrence(f"UNTIL={value}: send YYYYMMDD, YYYYMMDDTHHMMSS or YYYYMMDDTHHMMSSZ.")
    day, clock, utc = match.groups()
    try:
        if clock is None:
            moment = datetime.combine(datetime.strptime(day, "%Y%m%d").date(), time(23, 59, 59), zone)
        else:
            naive = datetime.strptime(day + clock, "%Y%m%d%H%M%S")
            moment = naive.replace(tzinfo=UTC if utc else zone)
        return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    except (ValueError, OverflowError):
        raise invalid_recurrence(f"UNTIL={value}: not a real date and time.") from None


def normalise(rule: str, timezone: str) -> str:
    """The rule with its parts checked, in a fixed order, upper case, defaults dropped."""
    zone = zone_of(timezone)
    text = rule.strip().upper().removeprefix("RRULE:")
    if not text or len(text) > MAX_RULE_CHARS:
        raise invalid_recurrence(f"A rule has 1 to {MAX_RULE_CHARS} characters, e.g. FREQ=WEEKLY;BYDAY=MO.")
    parts: dict[str, str] = {}
    for part in text.split(";"):
        name, equals, value = part.partition("=")
        if not equals or not value:
            raise invalid_recurrence(f"{part!r} is not NAME=VALUE.")
        if name not in _ORDER:
            raise invalid_recurrence(f"{name} is not supported (supported: {', '.join(_ORDER)}).")
        if name in parts:
            raise invalid_recurrence(f"{name} appears twice.")
        parts[name] = value
    freq = parts.get("FREQ")
    if freq not in FREQUENCIES:
        raise invalid_recurrence(f"FREQ={freq or ''} is not one of {', '.join(FREQUENCIES)}.")
    out = {"FREQ": freq}
    for name, value in parts.items():
        match name:
            case "INTERVAL":
                out[name] = _numbers(name, value, 1, 1000, negative=False)
                if "," in value:
                    raise invalid_recurrence(f"INTERVAL={value}: one number.")
            case "COUNT":
                out[name] = _numbers(name, value, 1, 1000, negative=False)
                if "," in value:
                    raise invalid_recurrence(f"COUNT={value}: one number.")
            case "BYMONTH":
                out[name] = _numbers(name, value, 1, 12, negative=False)
            case "BYMONTHDAY":
                if freq == "WEEKLY":
                    raise invalid_recurrence("BYMONTHDAY does not go with FREQ=WEEKLY.")
                out[name] = _numbers(name, value, 1, 31, negative=True)
            case "BYSETPOS":
                out[name] = _numbers(name, value, 1, 366, negative=True)
            case "BYDAY":
                out[name] = _days(value, freq)
            case "UNTIL":
                out[name] = _until(value, zone)
            case "WKST":
                if value not in WEEKDAYS:
                    raise invalid_recurrence(f"WKST={value} is not a weekday (MO..SU).")
                out[name] = value
    if "COUNT" in out and "UNTIL" in out:
        raise invalid_recurrence("COUNT and UNTIL: send one of them, not both.")
    if "BYSETPOS" in out and not {"BYMONTH", "BYMONTHDAY", "BYDAY"} & out.keys():
        raise invalid_recurrence("BYSETPOS needs another BY part (BYDAY, BYMONTHDAY or BYMONTH) to pick from.")
    if out.get("INTERVAL") == "1":
        del out["INTERVAL"]
    normalised = ";".join(f"{name}={out[name]}" for name in _ORDER if name in out)
    _check_occurs(normalised)
    return normalised


def _check_occurs(rule: str) -> None:
    """A rule that matches no day (BYMONTH=2;BYMONTHDAY=30) would make dateutil search to year 9999."""
    open_ended = ";".join(part for part in rule.split(";") if not part.startswith(("COUNT=", "UNTIL=")))
    probe = rrulestr(open_ended + ";UNTIL=20361231T235959", dtstart=datetime(2024, 1, 1))
    if next(iter(probe), None) is None:
        raise invalid_recurrence(f"{rule} matches no date at all.")


class RruleRecurrences:
    """The `RecurrenceRules` port."""

    def normalised(self, rule: str, timezone: str) -> str:
        return normalise(rule, timezone)

    def next_after(self, recurrence: Recurrence, after: datetime) -> datetime | None:
        """The series' first occurrence strictly after `after`, in UTC; None when it has ended."""
        for occurrence in self._from(recurrence, after):
            if occurrence > after:
                return occurrence
        return None

    def rebased(self, recurrence: Recurrence, start: datetime, current: datetime | None) -> Recurrence:
        """The series starting over at `start` (a due date the person moved): its time of day follows,
        and a COUNT becomes what was left of it from the `current` occurrence on."""
        parts = dict(part.split("=", 1) for part in recurrence.rule.split(";"))
        if "COUNT" in parts and current is not None and recurrence.start is not None:
            left = sum(1 for occurrence in self._from(recurrence, current) if occurrence >= current)
            parts["COUNT"] = str(max(left, 1))
        rule = ";".join(f"{name}={parts[name]}" for name in _ORDER if name in parts)
        return replace(recurrence, rule=rule, start=start)

    def occurrences(self, recurrence: Recurrence) -> Iterator[datetime]:
        """Every occurrence from the start, in UTC (for tests and tools; may not end)."""
        yield from (moment.astimezone(UTC) for moment in _expand(recurrence))

    def _from(self, recurrence: Recurrence, after: datetime) -> Iterator[datetime]:
        """Occurrences, in UTC, from a day before `after` on (a day covers any offset change)."""
        expansion = _expand(recurrence)
        zone = zone_of(recurrence.timezone)
        since = (after.astimezone(zone) - timedelta(days=1)).replace(fold=0)
        for seen, occurrence in enumerate(expansion.xafter(since, inc=True)):
            if seen >= _SEARCH_LIMIT:
                return
            try:
                moment = occurrence.astimezone(UTC)
            except OverflowError:  # past 9999-12-31 in UTC: the calendar ends the series
                return
            yield moment


def _expand(recurrence: Recurrence) -> rrule:
    if recurrence.start is None:
        raise ValueError("a recurrence is bound to its start before it is expanded")
    zone = zone_of(recurrence.timezone)
    start = recurrence.start.astimezone(zone).replace(microsecond=0)
    expansion = rrulestr(recurrence.rule, dtstart=start)
    assert isinstance(expansion, rrule)  # noqa: S101 - one RRULE, never a set
    return expansion
