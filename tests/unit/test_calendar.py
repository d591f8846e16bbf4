"""The simulated calendar: working days, month and year ends, and pacing."""

from __future__ import annotations

from datetime import date

import pytest

from clearsim.domain.calendar import (Calendar, SimClock, is_month_end, month_end,
                                      next_month_start, month_of, year_end)

# 2019: 1 May (Wed) to 4 May (Sat) were holidays; Sunday 5 May was a make-up working day.
MAY = Calendar(holidays=frozenset(date(2019, 5, d) for d in range(1, 5)),
               workdays=frozenset({date(2019, 5, 5)}))


def test_weekends_holidays_and_make_up_days():
    assert Calendar().is_working_day(date(2019, 4, 30))          # Tuesday
    assert not Calendar().is_working_day(date(2019, 5, 4))       # Saturday
    assert not MAY.is_working_day(date(2019, 5, 1))              # Labour Day, a Wednesday
    assert MAY.is_working_day(date(2019, 5, 5))                  # a Sunday worked


def test_adding_working_days_skips_what_is_not_one():
    # From Tue 30 Apr: 1st working day Sun 5 May (make-up), 2nd Mon 6, 3rd Tue 7.
    assert MAY.add_working_days(date(2019, 4, 30), 1) == date(2019, 5, 5)
    assert MAY.add_working_days(date(2019, 4, 30), 3) == date(2019, 5, 7)
    # Ten working days after Fri 1 Mar 2019 (no holidays): Fri 15 Mar.
    assert Calendar().add_working_days(date(2019, 3, 1), 10) == date(2019, 3, 15)
    assert Calendar().add_working_days(date(2019, 3, 2), 0) == date(2019, 3, 4)


def test_working_days_between_counts_the_end_not_the_start():
    assert Calendar().working_days_between(date(2019, 3, 1), date(2019, 3, 15)) == 10
    assert MAY.working_days_between(date(2019, 4, 30), date(2019, 5, 7)) == 3
    assert MAY.working_days_between(date(2019, 5, 7), date(2019, 4, 30)) == -3


def test_month_and_year_boundaries():
    assert month_end(date(2019, 2, 10)) == date(2019, 2, 28)
    assert month_end(date(2020, 2, 10)) == date(2020, 2, 29)
    assert month_end(date(2019, 12, 5)) == date(2019, 12, 31)
    assert next_month_start(date(2019, 12, 31)) == date(2020, 1, 1)
    assert is_month_end(date(2019, 4, 30)) and not is_month_end(date(2019, 4, 29))
    assert year_end(date(2019, 7, 1)) == date(2019, 12, 31)
    assert month_of(date(2019, 3, 31)) == "201903"


def test_a_run_as_fast_as_possible_never_sleeps():
    slept = []
    clock = SimClock(date(2019, 12, 30), 4, sleep=slept.append)
    assert list(clock.run()) == [date(2019, 12, 30), date(2019, 12, 31), date(2020, 1, 1),
                                 date(2020, 1, 2)]
    assert slept == [] and clock.end == date(2020, 1, 2)


def test_a_paced_run_waits_for_each_day_at_its_wall_time():
    now = [100.0]
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    # 86,400x: one simulated day per wall second. The work of each day takes 0.25 s.
    clock = SimClock(date(2019, 1, 1), 3, speedup=86_400, sleep=sleep,
                     monotonic=lambda: now[0])
    for day in clock.run():
        now[0] += 0.25
        assert clock.now().date() == day
    assert slept == [0.75, 0.75]


@pytest.mark.parametrize("days, speedup", [(0, None), (3, 0), (3, -2)])
def test_a_clock_refuses_nonsense(days, speedup):
    with pytest.raises(ValueError):
        SimClock(date(2019, 1, 1), days, speedup=speedup)
