"""What a region tells whoever drives or reports on it: its read model.

Each query takes a connection and returns plain values under English names, whatever the
tables call their columns; the driver and the report ask these, never the tables.
"""

from __future__ import annotations

from sqlalchemy import func, select

from region_node.tables import (clearings, filings, insured_claims, policy_cache, refusals,
                                treated_claims)


def policies_held(conn) -> int:
    """How many regions' policies this region holds."""
    return conn.execute(select(func.count()).select_from(policy_cache)).scalar()


def registered_filing_ids(conn) -> set[str]:
    """The filings this region knows as registered nationally."""
    return set(conn.execute(select(filings.c.filing_id)
                            .where(filings.c.state == "registered")).scalars())


def refusals_made(conn) -> int:
    """How many settlements this region refused as the insuring region (its audit)."""
    return conn.execute(select(func.count()).select_from(refusals)
                        .where(refusals.c.role.in_(("insuring", "in_region")))).scalar()


def insured_claim_state(conn, claim_id: str) -> str | None:
    """The state of one of its insured's claims, as the insuring region; None if unknown."""
    return conn.execute(select(insured_claims.c.state)
                        .where(insured_claims.c.claim_id == claim_id)).scalar()


def treated_records(conn) -> list[dict]:
    """As treating region, its record of each claim: state, settlement, and whether the
    insuring region agreed (with the error when it did not)."""
    t = treated_claims
    return [dict(r) for r in conn.execute(select(
        t.c.claim_id, t.c.state, t.c.settlement, t.c.agreed, t.c.error)).mappings()]


def insured_records(conn) -> list[dict]:
    """As insuring region, its record of each claim: state, settlement and the fund share."""
    t = insured_claims
    return [dict(r) for r in conn.execute(select(
        t.c.claim_id, t.c.state, t.c.settlement, t.c.fund_pay)).mappings()]


def passed_on(conn, month: str) -> bool:
    """Whether this region has passed its disbursement for ``month`` on to its hospitals."""
    return conn.execute(select(clearings.c.clearing_id).where(
        clearings.c.setlym == month, clearings.c.paid_to_hospitals.is_not(None))
        .limit(1)).first() is not None


def paid_to_hospitals(conn) -> dict[str, int | None]:
    """Per clearing window, what this region paid its hospitals (None: not yet)."""
    return {r["clearing_id"]: r["paid_to_hospitals"] for r in conn.execute(select(
        clearings.c.clearing_id, clearings.c.paid_to_hospitals)).mappings()}
