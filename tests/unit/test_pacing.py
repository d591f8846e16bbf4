"""How the runner offers claims and how often it asks the nodes how far they are."""

from testbed.runner import Pace, Poll


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_claims_are_offered_evenly_at_the_rate():
    clock = FakeClock()
    pace = Pace(10.0, clock=clock)
    assert pace.take()                 # the first goes at once
    assert not pace.take()             # the next is due 0.1 s later
    assert abs(pace.wait() - 0.1) < 1e-9
    clock.now += 0.1
    assert pace.take() and not pace.take()


def test_a_runner_that_fell_behind_catches_up_rather_than_hiding_the_delay():
    clock = FakeClock()
    pace = Pace(10.0, clock=clock)
    assert pace.take()
    clock.now += 1.0                   # a second late: ten claims are due now
    taken = 0
    while pace.take():
        taken += 1
    assert taken == 10 and pace.wait() > 0


def test_no_rate_means_as_fast_as_they_go():
    pace = Pace(None)
    assert all(pace.take() for _ in range(1000)) and pace.wait() == 0


def test_asking_more_often_when_asking_is_cheap():
    poll = Poll(least=0.01, most=0.5)
    assert poll.due()
    assert poll.timed(lambda: 42) == 42
    assert 0 < poll.wait() <= 0.01 + 1e-6


def test_asking_less_often_when_asking_is_costly():
    import time
    poll = Poll(least=0.001, most=0.5)
    poll.timed(lambda: time.sleep(0.02))
    # about four times what the question cost: asking takes a fifth of the time at most
    assert poll.wait() > 0.05
