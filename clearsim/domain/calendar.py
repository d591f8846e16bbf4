"""The simulated business calendar: working days, month ends, year end, and the run's clock.

Deadlines in the business cycles are counted in working days (reviews of 10 working days,
disbursement within 7, DOMAIN.md §5): weekends and public holidays are not working days,
and China's make-up working days (a Saturday worked in exchange for a holiday) are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

ONE_DAY = timedelta(days=1)


@dataclass(frozen=True)
class Calendar:
    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()   # make-up working days on a weekend

    def is_working_day(self, day: date) -> bool:
        if day in self.workdays:
            return True
        return day.weekday() < 5 and day not in self.holidays

    def add_working_days(self, day: date, n: int) -> date:
        """The n-th working day after ``day`` (``day`` itself not counted); n = 0 is
        ``day`` if it is a working day, else the next one."""
        if n < 0:
            raise ValueError("n must not be negative")
        if n == 0:
            while not self.is_working_day(day):
                day += ONE_DAY
            return day
        while n:
            day += ONE_DAY
            if self.is_working_day(day):
                n -= 1
        return day

    def working_days_between(self, start: date, end: date) -> int:
        """Working days in (start, end]: how many working days ``end`` is after ``start``."""
        sign = 1
        if end < start:
            start, end, sign = end, start, -1
        count = 0
        day = start
        while day < end:
            day += ONE_DAY
            count += self.is_working_day(day)
        return sign * count


def start_of(day: date) -> datetime:
    """A simulated day as a moment: its start, in UTC (the simulator's business time)."""
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


def month_end(day: date) -> date:
    return next_month_start(day) - ONE_DAY


def is_month_end(day: date) -> bool:
    return (day + ONE_DAY).month != day.month


def next_month_start(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def year_end(day: date) -> date:
    return date(day.year, 12, 31)


def month_of(day: date) -> str:
    """The clearing month of a day, as the national interface writes it (YYYYMM)."""
    return f"{day.year:04d}{day.month:02d}"



@dataclass
class SimClock:
    """A run's simulated days, driven as fast as possible or paced to a speed-up.

    With ``speedup`` S one simulated day lasts 86,400 / S wall seconds; ``sleep`` is
    injected so pacing can be tested without sleeping.
    """

    start: date
    days: int
    speedup: float | None = None     # a time ratio: simulated seconds per wall second
    sleep: Callable[[float], None] = field(default=lambda seconds: None, repr=False)
    monotonic: Callable[[], float] = field(default=lambda: 0.0, repr=False)
    today: date = field(init=False)

    def __post_init__(self) -> None:
        if self.days < 1:
            raise ValueError("a run lasts at least one day")
        if self.speedup is not None and self.speedup <= 0:
            raise ValueError("speedup must be positive")
        self.today = self.start

    @property
    def end(self) -> date:
        return self.start + (self.days - 1) * ONE_DAY

    def now(self) -> datetime:
        return start_of(self.today)

    def seconds_per_day(self) -> float | None:
        return None if self.speedup is None else 86_400 / self.speedup

    def run(self) -> Iterator[date]:
        """Each simulated day in turn; paced when a speed-up is set."""
        began = self.monotonic()
        for offset in range(self.days):
            self.today = self.start + offset * ONE_DAY
            if self.speedup is not None:
                due = began + offset * self.seconds_per_day()
                late = due - self.monotonic()
                if late > 0:
                    self.sleep(late)
            yield self.today
