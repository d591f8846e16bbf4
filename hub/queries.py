"""What the hub tells whoever drives or reports on it: its read model.

Each query takes a connection and returns plain values under English names, whatever the
tables call their columns; the driver and the report ask these, never the tables.
"""

from __future__ import annotations

from sqlalchemy import bindparam, func, select

from clearsim.db import prebuilt
from hub.tables import cases, claims, clearings, positions, reconciliations


def claim_records(conn) -> list[dict]:
    """The hub's record of each cross-region claim: its state, the fund share and when the
    claim was settled and reconciled."""
    return [dict(r) for r in conn.execute(select(
        claims.c.claim_id, claims.c.state, claims.c.fund_pay,
        claims.c.settled_on, claims.c.settled_at,
        claims.c.reconciled_on, claims.c.reconciled_at)).mappings()]


def reversed_settlements(conn) -> list[dict]:
    """Claims whose first settlement the treating region cancelled (2305) to settle them
    again: the settlement reversed beside the one that stands, in claim order. Only the one
    that stands is reconciled and cleared."""
    return [dict(r) for r in conn.execute(select(
        claims.c.claim_id, claims.c.reversed_settlement_id, claims.c.settlement_id,
        claims.c.state, claims.c.fund_pay).where(claims.c.reversed_settlement_id.is_not(None))
        .order_by(claims.c.claim_id)).mappings()]


def reconciliation_states(conn, day) -> dict[str, str]:
    """Per region, where the three-party reconciliation of ``day`` stands (polled)."""
    statement = prebuilt((reconciliations, "states"), lambda: select(
        reconciliations.c.region, reconciliations.c.state)
        .where(reconciliations.c.statement_date == bindparam("day")))
    return dict(conn.execute(statement, {"day": day}).all())


def clearing_state(conn, month: str) -> str | None:
    """The state of the clearing window of ``month`` (``YYYYMM``); None before it opens
    (polled)."""
    statement = prebuilt((clearings, "state"), lambda: select(clearings.c.state)
                         .where(clearings.c.month == bindparam("month")))
    return conn.execute(statement, {"month": month}).scalar()


def positions_by_window(conn) -> list[dict]:
    """Each region's position in each clearing window, beside the window's month and state."""
    return [dict(r) for r in conn.execute(select(
        positions.c.clearing_id, clearings.c.month, clearings.c.state,
        positions.c.region, positions.c.payable, positions.c.receivable,
        positions.c.paid, positions.c.disbursed)
        .join_from(positions, clearings, positions.c.clearing_id == clearings.c.clearing_id)
    ).mappings()]


def reconciliation_cases(conn) -> list[dict]:
    """Every case the daily reconciliation opened, in case order."""
    return [dict(r) for r in conn.execute(select(
        cases.c.case_id, cases.c.statement_date,
        cases.c.region, cases.c.settlement_id,
        cases.c.claim_id, cases.c.cause, cases.c.owner, cases.c.repair, cases.c.state,
        cases.c.resolution).order_by(cases.c.case_id)).mappings()]


def claims_counted_in_windows(conn) -> int:
    """How many claims the clearing windows say they hold, summed over the windows."""
    return conn.execute(select(func.coalesce(func.sum(clearings.c.claims), 0))).scalar()


def cleared_claims(conn) -> int:
    """How many claims are marked as belonging to a clearing window."""
    return conn.execute(select(func.count()).select_from(claims)
                        .where(claims.c.clearing_id.is_not(None))).scalar()
