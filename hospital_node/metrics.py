"""The hospitals' metrics, read from their own ledger when scraped: their claims, how long a
claim waits for its settlement (wall time) and the fund's share for its payback (simulated
days), and what the fund still owes each hospital, by age."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

from sqlalchemy import Date, case, func, literal, or_, select

from clearsim.metrics import (DAY, DAY_BUCKETS, LATENCY_BUCKETS, NodeCollector, days_between,
                              gauge, histogram, histogram_select, seconds_between, utc_day,
                              yuan)
from hospital_node.tables import ClaimState, claims, reconciliations

# Ages of a receivable in simulated days, as the run report buckets them: (name, at most).
AGEING = (("0-30", 30), ("31-60", 60), ("61-90", 90), (">90", None))


def claim_states(conn):
    return [("hospital", state, count) for state, count in conn.execute(
        select(claims.c.state, func.count()).group_by(claims.c.state).order_by(claims.c.state))]


def settlement_latency(conn):
    """Wall seconds from a claim's submission to the answer that settled it (or refused
    direct settlement)."""
    return conn.execute(histogram_select(
        seconds_between(claims.c.submitted_at, claims.c.answered_at), LATENCY_BUCKETS))


def payback_latency(conn):
    """Simulated days from a patient's admission to the day the fund's share came back."""
    return conn.execute(histogram_select(
        days_between(utc_day(claims.c.admitted_at), claims.c.paid_on) * DAY, DAY_BUCKETS))


def latest_day(conn) -> date | None:
    """The latest simulated day in the hospitals' records: the day they are at."""
    c = claims.c
    days = conn.execute(select(
        func.max(utc_day(c.admitted_at)), func.max(c.settled_on), func.max(c.paid_on),
        func.max(c.refused_on), func.max(c.appeal_decided_on),
        select(func.max(reconciliations.c.statement_date)).scalar_subquery())).one()
    return max((day for day in days if day is not None), default=None)


def receivables(as_of: Callable[[], date] | None):
    def read(conn):
        """What the fund owes each hospital on the day ``as_of`` gives (default: the day
        they are at), in yuan by age: settled claims admitted by then and not yet paid
        back then, by simulated days since admission (zero included)."""
        on = as_of() if as_of is not None else latest_day(conn)
        if on is None:
            return []
        hospitals = conn.execute(select(claims.c.hospital).distinct()).scalars().all()
        day = utc_day(claims.c.admitted_at)
        age = case(*((day >= literal(on - timedelta(days=most), Date), name)
                     for name, most in AGEING if most is not None), else_=AGEING[-1][0])
        unpaid = select(claims.c.hospital, age.label("age"), claims.c.fund_pay).where(
            claims.c.state == ClaimState.SETTLED, day <= literal(on, Date),
            or_(claims.c.paid_on.is_(None), claims.c.paid_on > literal(on, Date))).subquery()
        owed = {(hospital, bucket): fen for hospital, bucket, fen in conn.execute(
            select(unpaid.c.hospital, unpaid.c.age, func.sum(unpaid.c.fund_pay))
            .group_by(unpaid.c.hospital, unpaid.c.age))}
        return [(hospital, name, yuan(owed.get((hospital, name)) or 0))
                for hospital in sorted(hospitals) for name, _ in AGEING]
    return read


def families(as_of: Callable[[], date] | None):
    return (
        gauge("clearsim_claims", "Claims held, by the role the node plays in them and state",
              ("role", "state"), claim_states),
        histogram("clearsim_settlement_latency_seconds",
                  "Wall seconds from a claim's submission by its hospital to the answer "
                  "(settled directly, or refused direct settlement)",
                  (), LATENCY_BUCKETS, settlement_latency),
        histogram("clearsim_payback_latency_simulated_seconds",
                  "Simulated time from a patient's admission to the day the fund's share "
                  "came back to the hospital (whole days)", (), DAY_BUCKETS, payback_latency),
        gauge("clearsim_receivables_yuan",
              "What the fund owes each hospital (advanced at discharge, not yet paid "
              "back), by age in simulated days since admission", ("hospital", "age"),
              receivables(as_of)),
    )


def collector(node, as_of: Callable[[], date] | None = None) -> NodeCollector:
    """A hospital node's families (and every node's), for ``registry.register``.
    ``as_of``: the simulated day receivables are aged on (default: the latest day in the
    hospitals' records)."""
    return NodeCollector(node, families(as_of))
