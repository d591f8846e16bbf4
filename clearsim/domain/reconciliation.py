"""Three-party reconciliation (三方对账): totals first (3201), then details (3202).

The hub holds the authoritative record of every cross-region settlement; each region holds
its own ledger of the same settlements (as treating region and as insuring region). Totals
per day are compared first; where they differ, every row is compared and given the 3202
result of DOMAIN.md §9; every row not balanced becomes a case with a cause and an owner.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tenacity import RetryCallState, wait_exponential

BALANCED = 0          # the row is the same on both sides
PLATFORM_MORE = 1     # only the platform (the hub) has it
INSTITUTION_MORE = 2  # only the institution (the region) has it
DATA_DIFFER = 3       # both have it, with different amounts

CAUSES = {PLATFORM_MORE: "MISSING_AT_REGION", INSTITUTION_MORE: "MISSING_AT_HUB",
          DATA_DIFFER: "AMOUNT_DIFFERS"}


@dataclass(frozen=True)
class ReconciliationTerms:
    """When a day's settlements are reconciled (that many working days after the day), and
    how a region that does not answer is asked again: exponential backoff in working days
    with jitter, bounded by ``max_attempts``, after which its silence becomes a case."""
    after_working_days: int = 1
    max_attempts: int = 3
    retry_initial_working_days: int = 1
    retry_max_working_days: int = 4
    retry_jitter_working_days: int = 1

    def retry_delay(self, attempt: int, rnd: random.Random) -> int:
        """Working days to wait after ``attempt`` before the next one (tenacity's
        exponential backoff, plus whole-day jitter from a seeded generator, so a run is
        reproducible)."""
        state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})
        state.attempt_number = attempt
        backoff = wait_exponential(multiplier=self.retry_initial_working_days,
                                   min=self.retry_initial_working_days,
                                   max=self.retry_max_working_days)(state)
        return int(backoff) + rnd.randint(0, self.retry_jitter_working_days)


@dataclass(frozen=True)
class Row:
    setl_id: str
    total: int      # fen
    fund_pay: int   # fen


@dataclass(frozen=True)
class Totals:
    count: int
    total: int
    fund_pay: int


def totals(rows: Iterable[Row]) -> Totals:
    rows = list(rows)
    return Totals(len(rows), sum(r.total for r in rows), sum(r.fund_pay for r in rows))


def compare_details(platform: Mapping[str, Row], institution: Mapping[str, Row]) -> dict[str, int]:
    """The 3202 result of every settlement either side holds."""
    out = {}
    for setl_id in sorted(set(platform) | set(institution)):
        mine, theirs = platform.get(setl_id), institution.get(setl_id)
        if theirs is None:
            out[setl_id] = PLATFORM_MORE
        elif mine is None:
            out[setl_id] = INSTITUTION_MORE
        else:
            out[setl_id] = BALANCED if mine == theirs else DATA_DIFFER
    return out


@dataclass(frozen=True)
class Case:
    cause: str
    owner: str       # the node that must repair its ledger
    repair: str      # "resend" | "reversal and resend" | "escalate"


def case_for(result: int, region_node: str, region_is_insuring: bool) -> Case:
    """Who repairs what. The hub resends its record to an insuring region that lacks it or
    holds other amounts (reversing what it held first); a treating region's ledger that
    disagrees with what it sent, and a row the hub never received, go to people."""
    cause = CAUSES[result]
    if result == PLATFORM_MORE and region_is_insuring:
        return Case(cause, region_node, "resend")
    if result == DATA_DIFFER and region_is_insuring:
        return Case(cause, region_node, "reversal and resend")
    owner = "hub" if result == INSTITUTION_MORE else region_node
    return Case(cause, owner, "escalate")
