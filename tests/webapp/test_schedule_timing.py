"""webapp.schedules.timing, step by step: the clock is a parameter, never read.

DST dates used: Europe/Paris springs forward on 2026-03-29 (02:00 CET becomes 03:00
CEST, 01:00 UTC) and falls back on 2026-10-25 (03:00 CEST becomes 02:00 CET, 01:00 UTC).
"""

from __future__ import annotations

import datetime as dt

import pytest

from webapp.schedules import timing
from webapp.schedules.timing import BadSchedule, Due, due_ticks, next_fires


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


# Parsing ------------------------------------------------------------------------------


def test_a_five_field_expression_is_normalised():
    assert timing.parse_cron("  */15   9-17 * * MON-FRI ") == "*/15 9-17 * * MON-FRI"


@pytest.mark.parametrize(
    ("expr", "says"),
    [
        ("* * * *", "needs 5 fields"),
        ("0 * * * * *", "not 6"),
        ("61 * * * *", "is not valid"),
        ("0 0 31 2 *", "is not valid"),
        ("0 0 * * $(reboot)", "a character cron does not use"),
    ],
)
def test_a_bad_cron_expression_is_refused_naming_the_field(expr, says):
    with pytest.raises(BadSchedule) as caught:
        timing.parse_cron(expr)
    assert caught.value.field == "cron"
    assert says in caught.value.message


@pytest.mark.parametrize("zone", ["Mars/Olympus", "../../etc/passwd", "", "Europe/Paris "])
def test_a_time_zone_must_be_an_iana_name(zone):
    with pytest.raises(BadSchedule) as caught:
        timing.parse_zone(zone)
    assert caught.value.field == "timezone"


def test_iana_names_are_accepted():
    assert str(timing.parse_zone("America/New_York")) == "America/New_York"
    assert str(timing.parse_zone("UTC")) == "UTC"


# Next fire times ----------------------------------------------------------------------


def test_next_five_fire_times_are_in_utc_and_in_the_schedules_zone():
    fires = next_fires("0 9 * * *", "America/New_York", utc(2026, 1, 5, 15, 0))
    # 09:00 EST is 14:00 UTC: today's has passed, so tomorrow's first.
    assert fires == [utc(2026, 1, d, 14, 0) for d in range(6, 11)]


def test_a_time_skipped_by_spring_forward_fires_once_right_after_the_gap():
    fires = next_fires("30 2 * * *", "Europe/Paris", utc(2026, 3, 27), 4)
    assert fires == [
        utc(2026, 3, 27, 1, 30),  # 02:30 CET
        utc(2026, 3, 28, 1, 30),
        utc(2026, 3, 29, 1, 0),  # 02:30 does not exist: 03:00 CEST, once
        utc(2026, 3, 30, 0, 30),  # 02:30 CEST
    ]


def test_a_time_repeated_by_fall_back_fires_once():
    fires = next_fires("30 2 * * *", "Europe/Paris", utc(2026, 10, 24), 3)
    assert fires == [
        utc(2026, 10, 24, 0, 30),  # 02:30 CEST
        utc(2026, 10, 25, 0, 30),  # the first 02:30 only, not the CET one an hour later
        utc(2026, 10, 26, 1, 30),  # 02:30 CET
    ]


def test_an_hourly_schedule_keeps_real_hours_across_fall_back():
    fires = next_fires("0 * * * *", "Europe/Paris", utc(2026, 10, 24, 23, 30), 4)
    # Every hour of real time, the repeated 02:00 local included.
    assert fires == [utc(2026, 10, 25, h, 0) for h in range(0, 4)]


# due_ticks ----------------------------------------------------------------------------

HOURLY = "0 * * * *"


def test_nothing_is_due_before_the_first_fire_time():
    assert due_ticks(HOURLY, "UTC", utc(2026, 1, 1, 10, 0), utc(2026, 1, 1, 10, 59, 59)) == []


def test_a_fire_time_reached_is_due_on_time():
    assert due_ticks(HOURLY, "UTC", utc(2026, 1, 1, 10, 0), utc(2026, 1, 1, 11, 0, 5)) == [
        Due(utc(2026, 1, 1, 11, 0))
    ]


def test_a_fire_time_exactly_now_is_due():
    assert due_ticks(HOURLY, "UTC", utc(2026, 1, 1, 10, 30), utc(2026, 1, 1, 11)) == [
        Due(utc(2026, 1, 1, 11))
    ]


def test_the_tick_recorded_last_is_not_due_again():
    last = utc(2026, 1, 1, 11, 0)
    assert due_ticks(HOURLY, "UTC", last, utc(2026, 1, 1, 11, 0, 30)) == []


def test_a_clock_behind_the_last_tick_makes_nothing_due():
    assert due_ticks(HOURLY, "UTC", utc(2026, 1, 1, 11), utc(2026, 1, 1, 10)) == []


def test_ticking_step_by_step_gives_each_fire_time_once():
    since = utc(2026, 1, 1, 9, 59)
    seen = []
    for minute in range(0, 240):  # a ticker every minute, for 4 hours
        now = utc(2026, 1, 1, 10) + dt.timedelta(minutes=minute)
        for due in due_ticks(HOURLY, "UTC", since, now):
            seen.append(due)
            since = due.at
    assert [d.at.hour for d in seen] == [10, 11, 12, 13]
    assert not any(d.catch_up for d in seen)


def test_after_downtime_only_one_catch_up_is_due_standing_for_the_missed_ticks():
    # Last tick at 10:00; the server was down until 15:20. 11..15 were missed: one run,
    # at 15:00, as a catch-up for the four before it.
    due = due_ticks(HOURLY, "UTC", utc(2026, 1, 1, 10), utc(2026, 1, 1, 15, 20))
    assert due == [Due(utc(2026, 1, 1, 15), catch_up=True, missed=4)]
    # And the next tick after it is on time again.
    assert due_ticks(HOURLY, "UTC", due[0].at, utc(2026, 1, 1, 16, 0, 10)) == [
        Due(utc(2026, 1, 1, 16))
    ]


def test_a_single_tick_found_late_is_a_catch_up():
    due = due_ticks(HOURLY, "UTC", utc(2026, 1, 1, 10), utc(2026, 1, 1, 11, 40))
    assert due == [Due(utc(2026, 1, 1, 11), catch_up=True, missed=0)]


def test_a_tick_within_the_grace_is_on_time():
    now = utc(2026, 1, 1, 11) + timing.GRACE
    assert due_ticks(HOURLY, "UTC", utc(2026, 1, 1, 10), now) == [Due(utc(2026, 1, 1, 11))]


def test_a_very_long_outage_is_counted_up_to_a_bound_and_runs_the_latest_tick():
    due = due_ticks("* * * * *", "UTC", utc(2026, 1, 1), utc(2026, 3, 1, 0, 0, 30))
    assert due == [Due(utc(2026, 3, 1), catch_up=True, missed=timing.MAX_COUNTED)]


def test_due_ticks_follow_the_zone_across_spring_forward():
    since = utc(2026, 3, 28, 1, 30)  # Saturday's 02:30 CET tick
    assert due_ticks("30 2 * * *", "Europe/Paris", since, utc(2026, 3, 29, 0, 59)) == []
    assert due_ticks("30 2 * * *", "Europe/Paris", since, utc(2026, 3, 29, 1, 0, 10)) == [
        Due(utc(2026, 3, 29, 1, 0))
    ]


def test_due_ticks_do_not_fire_twice_in_the_repeated_hour_of_fall_back():
    since = utc(2026, 10, 25, 0, 30)  # the first 02:30 (CEST), recorded
    # The second 02:30 (CET, 01:30 UTC) is not a fire time.
    assert due_ticks("30 2 * * *", "Europe/Paris", since, utc(2026, 10, 25, 1, 31)) == []
