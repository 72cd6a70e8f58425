"""Periodic schedules: validation, the canonical definition, tick math in time zones and
across DST nights, and what plan() tells a scheduler to do — all with times passed in."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import jobqueue
from jobqueue import Backoff, ConfigurationError, InvalidArgumentError, InvalidScheduleError
from jobqueue.schedules import (
    MAX_CATCH_UP,
    MAX_COUNTED,
    REFUSED_OPTIONS,
    SCHEDULE_OPTIONS,
    PlannedClaim,
    Schedule,
    TickPlan,
    plan,
)
from jobqueue.submission import SUBMIT_OPTIONS

MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0


def at(text: str, tz: str = "UTC") -> float:
    """The UNIX time of a wall-clock time in ``tz`` (the first, if it occurs twice)."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz)).timestamp()


def utc(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def local(timestamp: float, tz: str) -> str:
    return datetime.fromtimestamp(timestamp, ZoneInfo(tz)).isoformat()


def every(seconds: float, **fields: Any) -> Schedule:
    return Schedule("tick", "work", every=timedelta(seconds=seconds), **fields)


def cron(expression: str, **fields: Any) -> Schedule:
    return Schedule("nightly", "work", cron=expression, **fields)


# -- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": ""}, "a schedule's name must be a non-empty str, got ''"),
        ({"name": "   "}, "name must be a non-empty str"),
        ({"name": None}, "name must be a non-empty str, got None"),
        ({"name": "bad\ud800"}, "not valid Unicode"),
        ({"worker": ""}, "schedule 'nightly': worker .* must be a non-empty str"),
        ({"worker": 3}, "worker .* must be a non-empty str, got 3"),
        ({"cron": None}, r"give exactly one of cron \(e.g. cron='0 2 \* \* \*'\) or every"),
        ({"every": timedelta(minutes=5)}, "give exactly one of cron"),
        ({"cron": "61 * * * *"}, r"cron '61 \* \* \* \*' is not a valid expression \(Bad minute\)"),
        ({"cron": "* * * *"}, r"\(Wrong number of fields\); write five fields"),
        ({"cron": "0 2 * * * * *"}, "Wrong number of fields"),
        ({"cron": "@daily"}, "nicknames such as @daily are not supported"),
        ({"cron": 5}, r"cron must be a str such as '0 2 \* \* \*', got 5"),
        ({"cron": "0 0 */30 2 MON#5"}, "matches no time at all"),
        ({"tz": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'; use an IANA name such as"),
        ({"tz": "../../etc/passwd"}, "unknown time zone"),
        ({"tz": ""}, "unknown time zone ''"),
        ({"tz": 1}, "tz must be an IANA time zone name such as 'Europe/Paris', got 1"),
        ({"overlap": "never"}, "overlap must be 'skip' .*'allow' .*'queue' .*got 'never'"),
        ({"catch_up": "all"}, "catch_up must be 'skip' .*'once' .*got 'all'"),
        ({"catch_up": 0}, f"an int from 1 to {MAX_CATCH_UP}"),
        ({"catch_up": MAX_CATCH_UP + 1}, f"got {MAX_CATCH_UP + 1}"),
        ({"catch_up": True}, "got True"),
        ({"catch_up": 2.0}, "got 2.0"),
        ({"grace": timedelta(0)}, "grace must be a positive timedelta"),
        ({"grace": timedelta(seconds=-1)}, "grace must be a positive timedelta"),
        ({"grace": 30}, r"grace must be a positive timedelta .*got 30"),
        ({"options": [("priority", 1)]}, "options must be a mapping of submit options"),
        ({"options": {"retries": 3}}, "unknown option 'retries'; .*priority, attempts"),
        ({"options": {"delay": 5}}, "option 'delay' is not for schedules: .*its tick"),
        ({"options": {"run_at": 5.0}}, "option 'run_at' is not for schedules"),
        ({"options": {"unique_key": "k"}}, "option 'unique_key' is not for schedules: .*overlap"),
        ({"options": {"priority": "high"}}, "schedule 'nightly': priority must be an int"),
        ({"options": {"attempts": 0}}, "attempts must be an int from 1 to 1000"),
        ({"options": {"timeout": -1}}, "timeout must be a positive number of seconds"),
        ({"options": {"backoff": "soon"}}, "backoff must be a number of seconds"),
        ({"data": {1: "one"}}, "schedule 'nightly' data: value does not survive a JSON round"),
        ({"data": float("nan")}, "data: value is not plain JSON"),
        ({"data": {"when": datetime(2024, 1, 1)}}, "data: value is not plain JSON"),
        ({"data": "\ud800"}, "not valid Unicode"),
    ],
)
def test_a_bad_field_raises_a_schedule_error_saying_what_to_do(
    fields: dict[str, Any], message: str
) -> None:
    valid: dict[str, Any] = {"name": "nightly", "worker": "work", "cron": "0 2 * * *"}
    with pytest.raises(InvalidScheduleError, match=message):
        Schedule(**{**valid, **fields})


@pytest.mark.parametrize(
    ("interval", "message"),
    [
        (300, r"every must be a timedelta such as timedelta\(minutes=5\), got 300"),
        (timedelta(0), "every must be at least 1 second"),
        (timedelta(seconds=-5), "every must be at least 1 second"),
        (timedelta(milliseconds=500), "every must be at least 1 second"),
        (timedelta(seconds=1.5), "every must be a whole number of seconds"),
    ],
)
def test_a_bad_interval_is_refused(interval: object, message: str) -> None:
    with pytest.raises(InvalidScheduleError, match=message):
        Schedule("tick", "work", every=interval)  # type: ignore[arg-type]


def test_an_interval_refuses_a_time_zone_and_points_to_cron() -> None:
    with pytest.raises(InvalidScheduleError, match=r"tz applies to cron schedules only.*cron="):
        every(DAY, tz="Europe/Paris")


def test_the_schedule_error_is_a_configuration_error_exported_at_the_top() -> None:
    assert issubclass(InvalidScheduleError, ConfigurationError)
    assert jobqueue.InvalidScheduleError is InvalidScheduleError
    assert "InvalidScheduleError" in jobqueue.__all__


def test_every_submit_option_is_either_taken_or_refused_with_a_reason() -> None:
    """A new submit_job option fails this until schedules decide about it."""
    assert sorted([*SCHEDULE_OPTIONS, *REFUSED_OPTIONS]) == sorted(SUBMIT_OPTIONS)


def test_options_are_checked_normalized_and_read_only() -> None:
    schedule = cron(
        "0 2 * * *",
        options={"priority": 5, "timeout": 600, "attempts": None, "backoff": 10},
    )
    assert dict(schedule.options) == {"priority": 5, "timeout": 600.0, "backoff": Backoff.fixed(10)}
    with pytest.raises(TypeError):
        schedule.options["priority"] = 1  # type: ignore[index]


def test_the_defaults() -> None:
    schedule = cron("0 2 * * *")
    assert (schedule.tz, schedule.overlap, schedule.catch_up) == ("UTC", "skip", "skip")
    assert (schedule.data, schedule.grace, dict(schedule.options)) == (None, None, {})


# -- definition -------------------------------------------------------------------------------


def test_the_definition_is_canonical_json_of_every_field() -> None:
    schedule = Schedule(
        "report",
        "mail",
        cron="0 7 * * mon",
        tz="Europe/Paris",
        data={"to": "ops", "kind": "weekly"},
        overlap="queue",
        catch_up=3,
        grace=timedelta(minutes=5),
        options={"priority": 2, "backoff": {"kind": "exponential", "delay": 1}},
    )
    assert schedule.definition() == (
        '{"catch_up":3,"cron":"0 7 * * MON","data":{"kind":"weekly","to":"ops"},"every":null,'
        '"grace":300.0,"name":"report","options":{"backoff":{"delay":1,"jitter":false,'
        '"kind":"exponential","max_delay":3600.0},"priority":2},"overlap":"queue",'
        '"tz":"Europe/Paris","worker":"mail"}'
    )
    assert json.loads(every(300).definition())["every"] == 300


def test_equal_definitions_make_equal_schedules_whatever_the_spelling() -> None:
    one = cron("0 2 * * mon", data={"a": 1, "b": [1, 2]}, options={"priority": 1})
    two = cron(" 0  2 * *\tMON ", data={"b": [1, 2], "a": 1}, options={"priority": 1})
    assert one.definition() == two.definition()
    assert one == two and hash(one) == hash(two)
    assert len({one, two}) == 1
    assert one != "0 2 * * mon"


@pytest.mark.parametrize(
    "change",
    [
        {"name": "other"},
        {"worker": "other"},
        {"cron": "0 3 * * *"},
        {"tz": "Europe/Paris"},
        {"data": {"a": 1}},
        {"data": 1.0},  # 1 and 1.0 are equal in Python, not in JSON
        {"overlap": "allow"},
        {"catch_up": "once"},
        {"grace": timedelta(seconds=10)},
        {"options": {"priority": 1}},
    ],
)
def test_any_change_changes_the_definition(change: dict[str, Any]) -> None:
    base = cron("0 2 * * *", data=1)
    changed = replace(base, **change)
    assert changed.definition() != base.definition()
    assert changed != base


def test_the_definition_is_fixed_at_construction() -> None:
    data = {"items": [1]}
    schedule = cron("0 2 * * *", data=data)
    before = schedule.definition()
    data["items"].append(2)
    assert schedule.data == {"items": [1]} and schedule.definition() == before


# -- ticks: intervals -------------------------------------------------------------------------


def test_interval_ticks_are_anchored_to_the_epoch() -> None:
    """Two processes that start at different times compute the same ticks."""
    first = every(7)
    second = every(7)
    early = list(first.ticks(1_000_000.0, 1_000_100.0))
    late = list(second.ticks(1_000_050.5, 1_000_100.0))
    assert all(tick % 7 == 0 for tick in early)
    assert late == [tick for tick in early if tick > 1_000_050.5]
    hourly = every(HOUR)
    assert [utc(tick) for tick in hourly.ticks(at("2024-05-01T10:20"), at("2024-05-01T12:00"))] == [
        "2024-05-01T11:00:00",
        "2024-05-01T12:00:00",
    ]


def test_next_tick_is_strictly_after() -> None:
    schedule = every(10)
    assert schedule.next_tick(100.0) == 110.0
    assert schedule.next_tick(99.999) == 100.0
    assert schedule.next_tick(0) == 10.0


def test_ticks_are_read_lazily() -> None:
    """Thirty years of a one-second schedule: the first three come at once."""
    span = 30 * 365 * DAY
    assert list(itertools.islice(every(1).ticks(0, span), 3)) == [1.0, 2.0, 3.0]
    seconds = cron("* * * * * *")
    assert list(itertools.islice(seconds.ticks(0, span), 3)) == [1.0, 2.0, 3.0]


def test_ticks_are_in_the_half_open_range() -> None:
    assert list(every(10).ticks(100, 130)) == [110.0, 120.0, 130.0]
    assert list(every(10).ticks(130, 100)) == []


# -- ticks: cron in a time zone ---------------------------------------------------------------


def test_cron_ticks_in_its_time_zone() -> None:
    schedule = cron("0 9 * * *", tz="Europe/Paris")
    winter = schedule.next_tick(at("2024-01-15T00:00", "Europe/Paris"))
    summer = schedule.next_tick(at("2024-07-15T00:00", "Europe/Paris"))
    assert utc(winter) == "2024-01-15T08:00:00"
    assert utc(summer) == "2024-07-15T07:00:00"
    assert utc(cron("0 9 * * *").next_tick(at("2024-07-15T00:00"))) == "2024-07-15T09:00:00"


@pytest.mark.parametrize(
    ("tz", "expression", "day", "expected"),
    [
        # Spring forward: 02:00 → 03:00 in Paris, the skipped time runs once when clocks land.
        ("Europe/Paris", "0 2 * * *", "2024-03-31", "2024-03-31T03:00:00+02:00"),
        ("Europe/Paris", "30 2 * * *", "2024-03-31", "2024-03-31T03:00:00+02:00"),
        # Fall back: 03:00 → 02:00, the repeated time runs once, the first time (summer time).
        ("Europe/Paris", "0 2 * * *", "2024-10-27", "2024-10-27T02:00:00+02:00"),
        ("Europe/Paris", "30 2 * * *", "2024-10-27", "2024-10-27T02:30:00+02:00"),
        ("America/New_York", "0 2 * * *", "2024-03-10", "2024-03-10T03:00:00-04:00"),
        ("America/New_York", "30 2 * * *", "2024-03-10", "2024-03-10T03:00:00-04:00"),
        # New York repeats 01:00-02:00, so 02:00 and 02:30 occur once (winter time)...
        ("America/New_York", "0 2 * * *", "2024-11-03", "2024-11-03T02:00:00-05:00"),
        ("America/New_York", "30 2 * * *", "2024-11-03", "2024-11-03T02:30:00-05:00"),
        # ...and 01:30 twice: it runs the first time.
        ("America/New_York", "30 1 * * *", "2024-11-03", "2024-11-03T01:30:00-04:00"),
    ],
)
def test_a_nightly_cron_runs_once_on_both_dst_nights(
    tz: str, expression: str, day: str, expected: str
) -> None:
    schedule = cron(expression, tz=tz)
    start = at(f"{day}T00:00", tz)
    ticks = list(schedule.ticks(start - 1, start + 25 * HOUR - 1))
    assert [local(tick, tz) for tick in ticks] == [expected]
    # The night after is back to normal, one day (and the DST hour) later.
    following = schedule.next_tick(ticks[0])
    assert 23 * HOUR <= following - ticks[0] <= 25 * HOUR


def test_an_hourly_cron_follows_real_time_on_dst_nights() -> None:
    schedule = cron("0 * * * *", tz="Europe/Paris")
    spring = at("2024-03-31T00:00", "Europe/Paris")
    fall = at("2024-10-27T00:00", "Europe/Paris")
    assert len(list(schedule.ticks(spring - 1, spring + 23 * HOUR - 1))) == 23
    fall_ticks = list(schedule.ticks(fall - 1, fall + 25 * HOUR - 1))
    assert len(fall_ticks) == 25
    assert all(b - a == HOUR for a, b in itertools.pairwise(fall_ticks))


def test_a_seconds_field_comes_first() -> None:
    schedule = cron("*/15 * * * * *")
    start = at("2024-05-01T12:00")
    assert [utc(tick)[-5:] for tick in schedule.ticks(start, start + MINUTE)] == [
        "00:15",
        "00:30",
        "00:45",
        "01:00",
    ]
    assert cron("30 */2 * * * *").next_tick(start) == start + 30


def test_a_seconds_cron_in_a_zone_follows_the_wall_clock_literally() -> None:
    """Six fields have no Debian DST handling: a skipped time does not run, a repeated one
    runs twice (hence the module's advice to use UTC for them)."""
    schedule = cron("0 30 2 * * *", tz="Europe/Paris")
    spring = at("2024-03-31T00:00", "Europe/Paris")
    fall = at("2024-10-27T00:00", "Europe/Paris")
    assert list(schedule.ticks(spring, spring + 23 * HOUR)) == []
    assert [local(tick, "Europe/Paris") for tick in schedule.ticks(fall, fall + 25 * HOUR)] == [
        "2024-10-27T02:30:00+02:00",
        "2024-10-27T02:30:00+01:00",
    ]


DST_ZONES = ["UTC", "Europe/Paris", "America/New_York"]
CRONS = ["0 2 * * *", "30 2 * * *", "30 1 * * *", "0 * * * *", "*/20 1-3 * * *", "0 30 2 * * *"]
DST_CHANGES = [
    at("2024-03-10T07:00"),  # New York springs forward
    at("2024-03-31T01:00"),  # Paris springs forward
    at("2024-10-27T01:00"),  # Paris falls back
    at("2024-11-03T06:00"),  # New York falls back
]
near_a_change = st.integers(-3 * int(HOUR), 3 * int(HOUR)) | st.integers(-int(DAY), int(DAY))


@settings(max_examples=300, deadline=None)
@given(
    expression=st.sampled_from(CRONS),
    tz=st.sampled_from(DST_ZONES),
    change=st.sampled_from(DST_CHANGES),
    offsets=st.lists(near_a_change, min_size=2, max_size=2),
)
# The case that needs care: reading from inside Paris's repeated hour.
@example("30 2 * * *", "Europe/Paris", at("2024-10-27T01:00"), [-3600, 900])
def test_cron_ticks_do_not_depend_on_where_reading_starts(
    expression: str, tz: str, change: float, offsets: list[int]
) -> None:
    """What makes schedulers agree: started anywhere, even inside a repeated hour, the same
    ticks come out, strictly ascending, and next_tick is the first of them."""
    schedule = cron(expression, tz=tz)
    early, late = sorted(change + offset for offset in offsets)
    end = change + 2 * DAY
    from_early = list(schedule.ticks(early, end))
    from_late = list(schedule.ticks(late, end))
    assert from_late == [tick for tick in from_early if tick > late]
    assert all(a < b for a, b in itertools.pairwise(from_early))
    assert all(tick == int(tick) for tick in from_early)
    if from_late:
        assert schedule.next_tick(late) == from_late[0]


def test_reading_from_inside_the_repeated_hour_yields_no_earlier_tick() -> None:
    """02:15 the second time (winter time): the 02:30 tick was the first time, 45 minutes
    ago, so the next is tomorrow's."""
    schedule = cron("30 2 * * *", tz="Europe/Paris")
    second_pass = at("2024-10-27T01:15")  # 02:15+01:00
    assert local(schedule.next_tick(second_pass), "Europe/Paris") == "2024-10-28T02:30:00+01:00"


# -- grace ------------------------------------------------------------------------------------


def test_the_default_grace_is_a_minute_or_the_period_if_shorter() -> None:
    assert every(1).grace_for(100.0) == 1.0
    assert every(20).grace_for(100.0) == 20.0
    assert every(600).grace_for(600.0) == 60.0
    nightly = cron("0 2 * * *")
    assert nightly.grace_for(nightly.next_tick(at("2024-05-01T00:00"))) == 60.0
    uneven = cron("0,1 * * * * *")  # :00 then :01: periods of 1 and 59 seconds
    start = at("2024-05-01T12:00")
    assert uneven.grace_for(start) == 1.0
    assert uneven.grace_for(start + 1) == 59.0


def test_a_set_grace_applies_up_to_the_period() -> None:
    assert cron("0 2 * * *", grace=timedelta(hours=6)).grace_for(at("2024-05-01T02:00")) == (
        6 * HOUR
    )
    assert every(60, grace=timedelta(minutes=5)).grace_for(120.0) == 60.0


# -- plan: first sight ------------------------------------------------------------------------


def test_first_sight_records_the_latest_past_tick_without_a_job() -> None:
    assert plan(every(10), None, 1234.5) == TickPlan(baseline=1230.0)
    assert plan(every(10), None, 1230.0) == TickPlan(baseline=1230.0)
    nightly = cron("0 2 * * *", tz="Europe/Paris")
    first = plan(nightly, None, at("2024-06-01T10:00", "Europe/Paris"))
    assert first.runs == () and first.claims() == ()
    assert first.baseline is not None
    assert local(first.baseline, "Europe/Paris") == "2024-06-01T02:00:00+02:00"


def test_a_new_schedule_fires_first_at_its_next_tick() -> None:
    schedule = every(60)
    created = 1000.0 * 60 + 0.5  # just after a tick: that tick is not for this schedule
    baseline = plan(schedule, None, created).baseline
    assert baseline == 60_000.0
    assert plan(schedule, baseline, created + 30) == TickPlan()
    assert plan(schedule, baseline, 60_060.2).runs == (60_060.0,)


def test_first_sight_of_a_rare_cron_searches_back_far_enough() -> None:
    leap = cron("0 0 29 2 *")
    baseline = plan(leap, None, at("2027-06-01T00:00")).baseline
    assert baseline is not None and utc(baseline) == "2024-02-29T00:00:00"


def test_no_tick_before_now_means_no_baseline() -> None:
    """Times start at the epoch: a nightly cron has no tick at or before 01:00 on day one."""
    assert plan(cron("0 2 * * *"), None, HOUR) == TickPlan()


# -- plan: due ticks --------------------------------------------------------------------------


def test_nothing_due_plans_nothing() -> None:
    schedule = every(60)
    assert plan(schedule, 600.0, 659.9) == TickPlan()
    assert plan(schedule, 600.0, 600.0).claims() == ()
    assert plan(schedule, 900.0, 700.0) == TickPlan()  # another scheduler's clock is ahead


def test_an_on_time_tick_runs_and_a_late_one_is_missed() -> None:
    schedule = every(600)  # grace: 60 s
    assert plan(schedule, 600.0, 1260.0) == TickPlan(runs=(1200.0,), newest=1200.0)
    assert plan(schedule, 600.0, 1260.5) == TickPlan(missed=1, newest=1200.0)
    assert plan(schedule, 600.0, 1260.5).claims() == (PlannedClaim(1200.0, 1, False),)


@pytest.mark.parametrize(
    ("catch_up", "runs", "missed"),
    [
        ("skip", (1010.0,), 9),
        ("once", (1010.0,), 9),
        (3, (1008.0, 1009.0, 1010.0), 7),
        (10, tuple(float(t) for t in range(1001, 1011)), 0),
        (50, tuple(float(t) for t in range(1001, 1011)), 0),
    ],
)
def test_a_ten_second_gap_in_a_one_second_schedule(
    catch_up: str | int, runs: tuple[float, ...], missed: int
) -> None:
    """Last claimed 1000, now 1010.5: ticks 1001..1010 are due. Only 1010 can be on time (it
    is, 0.5 s late within 1 s), the other nine are late whatever the clock says."""
    result = plan(every(1, catch_up=catch_up), 1000.0, 1010.5)
    assert result == TickPlan(runs=runs, missed=missed, newest=1010.0)
    assert len(result.runs) + result.missed == 10


def test_exactly_at_a_tick_the_one_before_is_late() -> None:
    """At 1010.0 the tick 1009 is one period old, within min(60 s, 1 s) by the letter, but
    the next tick is due: only the newest can be on time."""
    assert plan(every(1), 1000.0, 1010.0) == TickPlan(runs=(1010.0,), missed=9, newest=1010.0)


DAY1 = at("2024-05-01T00:00")


@pytest.mark.parametrize(
    ("catch_up", "runs", "missed"),
    [("skip", (), 1), ("once", ("2024-05-02T02:00:00",), 0), (3, ("2024-05-02T02:00:00",), 0)],
)
def test_an_eight_hour_downtime_over_a_nightly_cron(
    catch_up: str | int, runs: tuple[str, ...], missed: int
) -> None:
    """Claimed 02:00 on May 1st; down from 23:00 to 07:00: the 02:00 tick of May 2nd is five
    hours late."""
    schedule = cron("0 2 * * *", catch_up=catch_up)
    result = plan(schedule, DAY1 + 2 * HOUR, DAY1 + DAY + 7 * HOUR)
    assert tuple(utc(tick) for tick in result.runs) == runs
    assert result.missed == missed and not result.capped
    assert result.newest == DAY1 + DAY + 2 * HOUR


@pytest.mark.parametrize(
    ("catch_up", "runs", "missed"),
    [
        ("skip", (), 3),
        ("once", ("2024-05-04",), 2),
        (2, ("2024-05-03", "2024-05-04"), 1),
        (5, ("2024-05-02", "2024-05-03", "2024-05-04"), 0),
    ],
)
def test_a_three_day_downtime_over_a_nightly_cron(
    catch_up: str | int, runs: tuple[str, ...], missed: int
) -> None:
    schedule = cron("0 2 * * *", catch_up=catch_up)
    result = plan(schedule, DAY1 + 2 * HOUR, DAY1 + 3 * DAY + 7 * HOUR)
    assert tuple(utc(tick)[:10] for tick in result.runs) == runs
    assert result.missed == missed


def test_a_long_grace_keeps_a_late_tick_on_time() -> None:
    schedule = cron("0 2 * * *", grace=timedelta(hours=6))
    result = plan(schedule, DAY1 + 2 * HOUR, DAY1 + DAY + 7 * HOUR)
    assert result.runs == (DAY1 + DAY + 2 * HOUR,) and result.missed == 0


def test_claims_carry_the_missed_count_once_with_the_oldest_run() -> None:
    result = plan(every(1, catch_up=3), 1000.0, 1010.5)
    assert result.claims() == (
        PlannedClaim(1008.0, 7, True),
        PlannedClaim(1009.0, 0, True),
        PlannedClaim(1010.0, 0, True),
    )


def test_a_long_downtime_keeps_the_plan_small() -> None:
    """Ten years of a one-second interval is arithmetic; two days of a one-second cron is
    counted up to MAX_COUNTED and reported as a lower bound."""
    interval = plan(every(1, catch_up=2), 0.0, 10 * 365 * DAY + 0.5)
    assert interval.runs == (10 * 365 * DAY - 1, 10 * 365 * DAY)
    assert interval.missed == 10 * 365 * 86400 - 2 and not interval.capped
    start = at("2024-05-01T00:00")
    seconds = plan(cron("* * * * * *", catch_up=2), start, start + 2 * DAY + 0.5)
    assert seconds.capped and seconds.missed >= MAX_COUNTED
    assert seconds.runs == (start + 2 * DAY - 1, start + 2 * DAY)
    assert seconds.newest == start + 2 * DAY


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0, 1e12, True, "1000", None])
def test_times_must_be_unix_timestamps(bad: object) -> None:
    schedule = every(10)
    with pytest.raises(InvalidArgumentError, match="now must be a UNIX timestamp"):
        plan(schedule, 100.0, bad)  # type: ignore[arg-type]
    if bad is not None:
        with pytest.raises(InvalidArgumentError, match="last_tick must be a UNIX timestamp"):
            plan(schedule, bad, 100.0)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="after must be"):
        schedule.next_tick(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="until must be"):
        schedule.ticks(0, bad)  # type: ignore[arg-type]


# -- plan: properties -------------------------------------------------------------------------

schedules = st.one_of(
    st.builds(
        lambda seconds, catch_up: every(seconds, catch_up=catch_up),
        st.sampled_from([1, 7, 60, 600, HOUR, DAY]),
        st.sampled_from(["skip", "once", 1, 3, 50]),
    ),
    st.builds(
        lambda expression, tz, catch_up: cron(expression, tz=tz, catch_up=catch_up),
        st.sampled_from([*CRONS, "*/5 * * * * *", "* * * * * *"]),
        st.sampled_from(DST_ZONES),
        st.sampled_from(["skip", "once", 1, 3, 50]),
    ),
)


@settings(max_examples=300, deadline=None)
@given(
    schedule=schedules,
    change=st.sampled_from(DST_CHANGES),
    last_offset=near_a_change,
    gap=st.one_of(st.floats(0, 120), st.floats(0, 4 * HOUR)),
)
def test_plan_runs_the_newest_due_ticks_and_counts_the_rest(
    schedule: Schedule, change: float, last_offset: float, gap: float
) -> None:
    last_tick = change + last_offset
    now = last_tick + gap
    result = plan(schedule, last_tick, now)
    due = list(schedule.ticks(last_tick, now))
    backfill = {"skip": 1, "once": 1}.get(str(schedule.catch_up), schedule.catch_up)
    assert result.baseline is None
    assert list(result.runs) == sorted(set(result.runs))
    assert all(last_tick < tick <= now for tick in result.runs)
    assert len(result.runs) <= backfill
    assert list(result.runs) == due[len(due) - len(result.runs) :]
    assert result.newest == (due[-1] if due else None)
    if result.capped:
        assert len(result.runs) + result.missed <= len(due)
    else:
        assert len(result.runs) + result.missed == len(due)
    claims = result.claims()
    assert sum(claim.missed for claim in claims) == result.missed
    if result.runs:
        assert [(claim.tick, claim.submit) for claim in claims] == [
            (tick, True) for tick in result.runs
        ]
    elif due:
        assert claims == (PlannedClaim(due[-1], result.missed, False),)
    else:
        assert claims == ()


@settings(max_examples=200, deadline=None)
@given(
    schedule=schedules,
    change=st.sampled_from(DST_CHANGES),
    offset=near_a_change,
)
def test_the_baseline_is_the_latest_tick_at_or_before_now(
    schedule: Schedule, change: float, offset: float
) -> None:
    now = change + offset
    baseline = plan(schedule, None, now).baseline
    assert baseline is not None
    assert baseline <= now < schedule.next_tick(baseline)
    assert schedule.next_tick(baseline - 1) == baseline  # a tick, not just some time
