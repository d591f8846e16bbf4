"""The hub's metrics, read from its own tables when scraped: its claims, the daily
three-party reconciliation (latency, open cases) and the monthly clearing by region and
month."""

from __future__ import annotations

from sqlalchemy import and_, func, select

from clearsim.metrics import (DAY, DAY_BUCKETS, NodeCollector, days_between, gauge, histogram,
                              histogram_select, yuan)
from hub.tables import CaseState, cases, claims, clearings, positions, reconciliations


def claim_states(conn):
    return [("hub", state, count) for state, count in conn.execute(
        select(claims.c.state, func.count()).group_by(claims.c.state).order_by(claims.c.state))]


def reconciliation_latency(conn):
    """Simulated days from a claim's settlement to the day all three parties agreed on it."""
    return conn.execute(histogram_select(
        days_between(claims.c.settled_on, claims.c.reconciled_on) * DAY, DAY_BUCKETS))


def reconciliation_states(conn):
    return conn.execute(select(reconciliations.c.state, func.count())
                        .group_by(reconciliations.c.state).order_by(reconciliations.c.state))


def open_cases(conn):
    """Per region the hub reconciles with, its cases still open (zero included)."""
    regions = select(reconciliations.c.region).distinct().subquery()
    return conn.execute(select(regions.c.region, func.count(cases.c.case_id)).select_from(
        regions.outerjoin(cases, and_(cases.c.region == regions.c.region,
                                      cases.c.state == CaseState.OPEN)))
        .group_by(regions.c.region).order_by(regions.c.region))


FLOWS = ("payable", "receivable", "paid", "disbursed")


def clearing_amounts(conn):
    """Each region's figures in each month's clearing window (yuan; a flow not there yet,
    such as a payment still to come, is left out)."""
    rows = conn.execute(select(positions.c.region, clearings.c.month,
                               *(positions.c[flow] for flow in FLOWS))
                        .join_from(positions, clearings,
                                   positions.c.clearing_id == clearings.c.clearing_id)
                        .order_by(clearings.c.month, positions.c.region))
    return [(region, month, flow, yuan(fen))
            for region, month, *amounts in rows
            for flow, fen in zip(FLOWS, amounts) if fen is not None]


FAMILIES = (
    gauge("clearsim_claims", "Claims held, by the role the node plays in them and state",
          ("role", "state"), claim_states),
    histogram("clearsim_reconciliation_latency_simulated_seconds",
              "Simulated time from a cross-region claim's settlement to the day the hub, "
              "the treating and the insuring region all agreed on it (whole days)",
              (), DAY_BUCKETS, reconciliation_latency),
    gauge("clearsim_reconciliations", "Daily reconciliations (day and region), by state",
          ("state",), reconciliation_states),
    gauge("clearsim_reconciliation_cases_open",
          "Reconciliation cases still open, by region", ("region",), open_cases),
    gauge("clearsim_clearing_yuan",
          "Monthly clearing by region and month (YYYYMM): what the region owes (payable), "
          "is owed (receivable), paid the hub and was disbursed", ("region", "month", "flow"),
          clearing_amounts),
)


def collector(node) -> NodeCollector:
    """The hub's families (and every node's), for ``registry.register``."""
    return NodeCollector(node, FAMILIES)
