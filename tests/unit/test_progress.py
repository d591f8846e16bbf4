"""The progress line of a run, and that it stays off the output when that is no terminal."""

from __future__ import annotations

import io
from datetime import date

from testbed.progress import ProgressDisplay, describe
from testbed.runner import Progress


def test_the_line_says_phase_claims_day_rate_and_elapsed():
    progress = Progress(phase="settling claims", claims=2000, finished=500,
                        day=date(2019, 4, 3), started=100.0)
    line = describe(progress, now=150.0)
    assert line == ("settling claims  claims 500/2,000 (25%)  day 2019-04-03  "
                    "10.0 claims/s  0:50 elapsed")


def test_before_any_claim_no_rate_is_claimed():
    line = describe(Progress(phase="registering filings", claims=10, started=0.0), now=61.0)
    assert line == "registering filings  claims 0/10 (0%)  1:01 elapsed"


def test_nothing_is_drawn_when_the_output_is_not_a_terminal():
    stream = io.StringIO()
    with ProgressDisplay(Progress(claims=3), stream) as display:
        assert not display.enabled
    assert stream.getvalue() == ""
